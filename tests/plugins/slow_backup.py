"""Test plugin: make database backups slow (a pause between backup steps, 0.05 s or
``PHOTOBOX_TEST_BACKUP_PAUSE``), so a crash test can kill the real server in the middle of one."""

import os

from photobox.safety import backups

backups.STEP_PAUSE = float(os.environ.get("PHOTOBOX_TEST_BACKUP_PAUSE", "0.05"))
