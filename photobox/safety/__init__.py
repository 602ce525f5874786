"""Keeping a library safe: scheduled database backups with retention, a human-readable
sidecar export of what cannot be re-derived from the files, staged restores, an integrity
check of the originals, and a startup check that the storage is really there."""
