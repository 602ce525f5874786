"""Near-duplicate photos (perceptual hashes, a pair rule that keeps bursts apart, groups and
the review page's actions) and "On this day" memories."""
