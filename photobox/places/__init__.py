"""Places: offline reverse geocoding of GPS positions (GeoNames cities1000), the Places
page, the photo map and the place search filter."""
