"""Test plugin: make database backups slow (a pause between backup steps), so a crash test
can kill the real server in the middle of one."""

from photobox.safety import backups

backups.STEP_PAUSE = 0.05
