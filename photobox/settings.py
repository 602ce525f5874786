"""Every setting photobox reads, with its default and the reason it exists.

Values come, lowest precedence first, from the defaults below, an optional TOML file
(``--config FILE`` or ``PHOTOBOX_CONFIG``, or ``photobox.toml`` in the data folder),
environment variables ``PHOTOBOX_<NAME>`` and command-line flags ``--<name>``.
``tests/test_settings.py`` fails when a setting here is missing from the README table.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["SETTINGS", "Setting", "Settings", "load_settings", "SettingsError"]


class SettingsError(ValueError):
    """A setting has a value photobox cannot use; the message names it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: Any
    type: type
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "./photobox-data", Path,
            "Folder holding photobox.db, the library of uploaded originals, caches, backups and models."),
    Setting("host", "127.0.0.1", str,
            "Address to listen on. Use 0.0.0.0 to serve the LAN (the Pi image does)."),
    Setting("port", 8080, int, "TCP port of the web app."),
    Setting("workers", 0, int,
            "Threads for CPU work (hashing, decoding, thumbnails, inference); 0 = number of CPU cores."),
    Setting("db_busy_timeout_ms", 5000, int,
            "How long a connection waits for a lock held by another process (e.g. the CLI) before failing."),
    Setting("web_query_time_limit_ms", 2000, int,
            "A database query made for a web request is interrupted after this long, so one slow page "
            "cannot starve the Pi; the request is answered 503 (try a narrower view)."),
    Setting("read_connections", 4, int, "Reader connections kept open for web requests."),
    Setting("job_poll_seconds", 5.0, float,
            "How often the scheduler looks for jobs queued by other processes (the CLI) or due for retry."),
    Setting("job_max_attempts", 5, int, "A job that fails this many times stays failed until retried by hand."),
    Setting("job_backoff_seconds", 30.0, float,
            "First retry delay of a failed job; doubles with each attempt, capped at one hour."),
    Setting("session_days", 30, int, "A login stays valid this many days after its last use."),
    Setting("secure_cookies", "auto", str,
            "Mark cookies Secure: 'auto' (when the request came over HTTPS, also via X-Forwarded-Proto "
            "from a proxy on this box or in trusted_proxies), 'always' or 'never'."),
    Setting("login_attempts", 5, int,
            "Wrong passwords allowed in 15 minutes before more tries are refused: per client address (per "
            "browser for one the owner logged in with before, which nobody else can lock), for the login "
            "page and WebDAV together; per link for share-link passwords."),
    Setting("trusted_proxies", "", str,
            "Addresses or networks of reverse proxies (e.g. 127.0.0.1 for one on this box) whose "
            "X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto headers photobox believes; empty = none, "
            "every client is the address it connects from."),
    Setting("log_level", "info", str, "Log level: debug, info, warning or error."),
    Setting("ml_threads", 0, int,
            "Threads per ML model session (onnxruntime intra-op); 0 = number of CPU cores."),
    Setting("ml_idle_seconds", 600, int,
            "Unload ML models after this many seconds unused, to give the memory back (they reload on demand)."),
    Setting("search_min_score", 0.2, float,
            "Search by description shows only matches at least this similar (cosine, 0-1); raise it for fewer, "
            "surer results."),
    Setting("trash_days", 30, int,
            "Photos stay in the trash this many days before they are deleted for good (0 = until emptied by hand)."),
    Setting("plugins", "", str,
            "Comma-separated Python modules loaded as features after the built-in ones, through the same "
            "seam: job kinds, pipeline stages, periodic work, routes, commands and doctor checks "
            "(ARCHITECTURE.md)."),
    Setting("map_tile_url", "", str,
            "Online map tiles for the Places map, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; empty "
            "(the default) = the bundled offline world outline only, and the browser contacts no other site."),
    Setting("disk_reserve_mb", 256, int,
            "Keep this many MiB free on the data disk: an upload (web, API, WebDAV, share) that would leave less "
            "is refused with 507, saying how much is free and how much is needed."),
    # backup
    Setting("backup_interval_hours", 24, int,
            "Back up the database into backups/ this often (with a JSON sidecar export); 0 = never automatically."),
    Setting("backup_daily_keep", 14, int, "Keep the newest backup of each of this many most recent days."),
    Setting("backup_monthly_keep", 12, int, "Also keep the first backup of each of this many most recent months."),
    Setting("integrity_days", 30, int,
            "Re-check every original's checksum once in this many days, in small daily slices; 0 = never."),
    Setting("integrity_slice_seconds", 300, int,
            "At most this many seconds of checksum checking per slice (it resumes where it stopped)."),
    Setting("require_existing_data", False, bool,
            "Never create a new data folder or database: start in the 'storage missing' state instead "
            "(set it, e.g. in /etc/photobox/photobox.env, once the library exists on an external disk)."),
    # isolate: decoders of untrusted files run in child processes (photobox.media.sandbox)
    Setting("isolate_decoders", True, bool,
            "Decode photos and videos (thumbnails, metadata, video conversion) in child processes, so a crash "
            "or a memory bomb in a decoder fails one job instead of stopping the server; false = in the server."),
    Setting("decoder_memory_mb", 1024, int,
            "Address-space limit of each decoder child process, in MB (0 = none); a file needing more fails."),
    Setting("decoder_timeout_s", 120.0, float,
            "A thumbnail or metadata read taking longer than this many seconds is stopped and its job fails "
            "(video conversion has no limit; it stops with its job)."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclasses.dataclass(slots=True)
class Settings:
    """The resolved settings (built by :func:`load_settings`); fields are the names in :data:`SETTINGS`."""

    data_dir: Path
    host: str
    port: int
    workers: int
    db_busy_timeout_ms: int
    web_query_time_limit_ms: int
    read_connections: int
    job_poll_seconds: float
    job_max_attempts: int
    job_backoff_seconds: float
    session_days: int
    secure_cookies: str
    login_attempts: int
    trusted_proxies: str
    log_level: str
    ml_threads: int
    ml_idle_seconds: int
    search_min_score: float
    trash_days: int
    plugins: str
    map_tile_url: str
    disk_reserve_mb: int
    backup_interval_hours: int
    backup_daily_keep: int
    backup_monthly_keep: int
    integrity_days: int
    integrity_slice_seconds: int
    require_existing_data: bool
    isolate_decoders: bool
    decoder_memory_mb: int
    decoder_timeout_s: float

    @property
    def db_path(self) -> Path:
        return self.data_dir / "photobox.db"

    @property
    def disk_reserve_bytes(self) -> int:
        """``disk_reserve_mb`` in bytes (never negative)."""
        return max(0, self.disk_reserve_mb) * 2**20

    @property
    def cpu_workers(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 2)

    def to_env(self) -> dict[str, str]:
        """The settings as ``PHOTOBOX_*`` variables, to hand them to a server worker process."""
        return {f"PHOTOBOX_{s.name.upper()}": str(getattr(self, s.name)) for s in SETTINGS}


def _coerce(setting: Setting, value: Any) -> Any:
    try:
        if setting.type is bool and isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        if setting.type is Path:
            return Path(os.path.expanduser(str(value)))
        return setting.type(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {setting.name!r}: cannot use {value!r} ({exc})") from None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolve settings from defaults < TOML file < ``PHOTOBOX_*`` env < ``overrides`` (flags).

    Args:
        overrides: values from command-line flags; ``None`` values are ignored.
        env: the environment to read (default ``os.environ``).
        config_file: a TOML file; default ``PHOTOBOX_CONFIG`` or ``<data_dir>/photobox.toml``.

    Raises:
        SettingsError: for an unknown key in the TOML file or a value of the wrong type.
    """
    env = os.environ if env is None else env
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}

    from_env = {s.name: env[f"PHOTOBOX_{s.name.upper()}"] for s in SETTINGS if f"PHOTOBOX_{s.name.upper()}" in env}
    # The data folder decides where the default config file is, so resolve it first.
    data_dir = overrides.get("data_dir", from_env.get("data_dir", values["data_dir"]))
    if config_file is None and env.get("PHOTOBOX_CONFIG"):
        config_file = Path(env["PHOTOBOX_CONFIG"])
    if config_file is None and (Path(str(data_dir)) / "photobox.toml").is_file():
        config_file = Path(str(data_dir)) / "photobox.toml"
    if config_file is not None:
        try:
            table = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"config file {config_file}: {exc}") from None
        unknown = sorted(set(table) - set(_BY_NAME))
        if unknown:
            raise SettingsError(f"config file {config_file}: unknown setting(s) {', '.join(unknown)}")
        values.update(table)
    values.update(from_env)
    values.update(overrides)
    resolved = {name: _coerce(_BY_NAME[name], value) for name, value in values.items()}
    if resolved["secure_cookies"] not in {"auto", "always", "never"}:
        raise SettingsError("setting 'secure_cookies' must be auto, always or never")
    from photobox.inputs import parse_networks

    try:
        parse_networks(resolved["trusted_proxies"])
    except ValueError as exc:
        raise SettingsError(f"setting 'trusted_proxies': {exc}") from None
    tile = resolved["map_tile_url"]
    if tile and not (tile.startswith("https://") and "{z}" in tile and "{x}" in tile and "{y}" in tile):
        raise SettingsError("setting 'map_tile_url' must be an https:// URL with {z}, {x} and {y}, or empty")
    return Settings(**resolved)
