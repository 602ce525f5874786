"""``photobox people recluster``: cluster every face again (names and corrections are kept)."""

from __future__ import annotations

import argparse

from photobox.cli.common import Commands, open_box

__all__ = ["add_commands"]


def cmd_people_recluster(args: argparse.Namespace) -> int:
    from photobox.people.faces_job import recluster_all

    box = open_box(args)
    try:
        stats = recluster_all(box)
    finally:
        box.close()
    print(f"re-clustered {stats['faces']} faces: {stats['changed']} moved, {stats['new_people']} new people")
    return 0


def add_commands(commands: Commands) -> None:
    people = commands.group("people", "people (face clusters)")
    people.add("recluster", "cluster all faces again (names and your corrections are kept)", cmd_people_recluster)
