"""The JSON API under ``/api/`` for scripts and phone apps, documented at ``/api/schema``."""
