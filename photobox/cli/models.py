"""``photobox models list|fetch``: the models the core loads for search and people."""

from __future__ import annotations

import sys
from pathlib import Path

from photobox.cli.common import Commands, settings_from
from photobox.ml.commands import cmd_models_fetch, cmd_models_list

__all__ = ["add_commands"]


def add_commands(commands: Commands) -> None:
    """``photobox models list|fetch`` (``commands`` is a :class:`photobox.cli.common.Commands`)."""
    models = commands.group("models", "ML models for search by description and people")
    models.add("list", "list available and installed models",
               lambda args: cmd_models_list(settings_from(args), sys.stdout))
    fetch = models.add("fetch", "download (checking sha256), quantize to int8 and install models",
                       lambda args: cmd_models_fetch(settings_from(args), args.names, sys.stdout,
                                                     source_override_dir=args.source,
                                                     trust_on_first_use=args.trust_on_first_use))
    fetch.add_argument("names", nargs="*", help="models to fetch (default: the default CLIP model)")
    fetch.add_argument("--from", dest="source", type=Path, default=None,
                       help="take the files from this folder instead of the model hub (offline installs)")
    fetch.add_argument("--trust-on-first-use", action="store_true",
                       help="accept files whose sha256 is not pinned in the manifest, and pin what was downloaded")
