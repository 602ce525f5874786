"""Every command photobox tells a person to run works as written: it parses with the real CLI
parser, points at this data folder, and the model fetch it names succeeds (against a tiny
local model served on 127.0.0.1), also offline with ``--from DIR``."""

from __future__ import annotations

import io
import re
import shlex
import stat
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from photobox import hints
from photobox.cli import build_parser
from photobox.ml import fetch_command
from photobox.ml.clip import ModelManager
from photobox.ml.commands import cmd_models_fetch, doctor_check
from photobox.ml.faces import FaceModels
from photobox.settings import load_settings
from tests.ml.helpers import serve, write_manifest
from tests.ml.tinymodels import tiny_manifest, write_tiny_models
from tests.server import free_port
from tests.test_cli import run

PLACEHOLDERS = {"FILE": "/tmp/x.tar.gz", "DIR": "/tmp/models", "PATH": "/tmp/photos", "NAME": "x"}


def commands_in(text: str) -> list[str]:
    """The `…` commands in a message."""
    return [c for c in re.findall(r"`([^`]+)`", text) if "photobox" in c]


def parse(cmd: str, data_dir: Path | None = None):
    """Parse ``cmd`` as the shell and then photobox's own parser would; check its program and folder."""
    words = shlex.split(cmd)
    if words[0] == "sudo":
        words = words[1:]
    prog = words.pop(0)
    if prog == sys.executable and words[:2] == ["-m", "photobox"]:
        words = words[2:]
    else:
        assert prog == "photobox" or (prog.endswith("/photobox") and Path(prog).is_file()), cmd
    args = build_parser().parse_args([PLACEHOLDERS.get(w, w) for w in words])
    if data_dir is not None:
        assert Path(getattr(args, "data_dir", "-")) == data_dir.resolve(), cmd
    return args


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("tiny-repo"))


def test_page_and_doctor_hints_parse(owner_client, settings, tmp_path):
    data = settings.data_dir
    found = []
    s = BeautifulSoup(owner_client.get("/search").text, "html.parser")
    found += commands_in(s.select_one("#ml-missing").text)
    s = BeautifulSoup(owner_client.get("/people").text, "html.parser")
    found += commands_in(s.select_one("#faces-missing").text)
    s = BeautifulSoup(owner_client.get("/places").text, "html.parser")
    found += [c.text for c in s.select(".places-missing code") if "photobox" in c.text]
    r = run("doctor", "--data-dir", str(data))
    found += commands_in(r.stdout)
    r = run("models", "list", "--data-dir", str(data))
    found += commands_in(r.stdout)
    r = run("places", "status", "--data-dir", str(data))
    found += commands_in(r.stdout)
    r = run("library", "list", "--data-dir", str(data))
    found += commands_in(r.stdout)
    assert len(found) >= 8, found
    for cmd in found:
        parse(cmd, data)
    fetches = [c for c in found if " models fetch" in c]
    # The shipped default CLIP model has no sha256 pins yet: without the flag `fetch` refuses it
    # (the default face models are pinned, so their hint needs none).
    unpinned = [c for c in fetches if not parse(c).names or "clip-vit-b-32-laion2b" in parse(c).names]
    assert len(unpinned) >= 3 and all("--trust-on-first-use" in c for c in unpinned), fetches
    assert any(" places install --from FILE " in c for c in found)

    # The login page is public: its hint names no path of this box.
    owner_client.cookies.clear()
    s = BeautifulSoup(owner_client.get("/login").text, "html.parser")
    code = s.select_one("p.hint code").text
    assert code == "photobox user set-password" and str(data) not in s.text
    assert parse(code).user_command == "set-password"


def test_the_model_hint_installs_a_model(settings, tmp_path, tiny):
    """The search page's sentence, run as written, installs the (unpinned) default model."""
    with serve(tiny.root) as (base, requests):
        manifests = tmp_path / "manifests"
        write_manifest(manifests, tiny_manifest(tiny, pinned=False, default=True, base_url=base))
        manager = ModelManager(settings.data_dir / "models", manifests_dir=manifests)
        [cmd] = commands_in(manager.status()["message"])
        args = parse(cmd, settings.data_dir)
        assert args.trust_on_first_use and args.names == []
        out = io.StringIO()
        status = cmd_models_fetch(load_settings({"data_dir": args.data_dir}, env={}), args.names, out,
                                  source_override_dir=args.source, trust_on_first_use=args.trust_on_first_use,
                                  manifests_dir=manifests)
        assert status == 0, out.getvalue()
        assert requests  # downloaded from the manifest's URL
    assert manager.status()["ready"] and "tiny-clip: installed" in out.getvalue()


def test_offline_fetch_says_how_to_install_from_a_folder(settings, tmp_path, tiny):
    nowhere = f"http://127.0.0.1:{free_port()}/tiny"  # nothing listens: like a box without internet
    manifests = tmp_path / "manifests"
    write_manifest(manifests, tiny_manifest(tiny, pinned=False, default=True, base_url=nowhere))
    out = io.StringIO()
    assert cmd_models_fetch(settings, [], out, trust_on_first_use=True, manifests_dir=manifests) == 1
    text = out.getvalue()
    assert "fetching tiny-clip failed" in text and "Without internet" in text
    [cmd] = commands_in(text)
    assert " --from DIR " in cmd
    args = parse(cmd.replace(" DIR ", f" {shlex.quote(str(tiny.root))} "), settings.data_dir)
    out = io.StringIO()
    assert cmd_models_fetch(settings, args.names, out, source_override_dir=args.source,
                            trust_on_first_use=args.trust_on_first_use, manifests_dir=manifests) == 0, out.getvalue()


def test_unpinned_refusal_gives_the_command_that_accepts(settings, tmp_path, tiny):
    manifests = tmp_path / "manifests"
    write_manifest(manifests, tiny_manifest(tiny, pinned=False))
    out = io.StringIO()
    assert cmd_models_fetch(settings, ["tiny-clip"], out, source_override_dir=tiny.root, manifests_dir=manifests) == 2
    [cmd] = commands_in(out.getvalue())
    args = parse(cmd, settings.data_dir)
    assert args.names == ["tiny-clip"] and args.trust_on_first_use


def test_pinned_models_need_no_trust_flag(tmp_path, tiny):
    manifests = tmp_path / "manifests"
    write_manifest(manifests, tiny_manifest(tiny, default=True))
    assert "--trust-on-first-use" not in fetch_command(tmp_path, manifests_dir=manifests)
    faces = FaceModels(tmp_path / "models").status()["message"]  # the shipped face models are pinned
    [cmd] = commands_in(faces)
    assert "--trust-on-first-use" not in cmd and parse(cmd, tmp_path).names == ["face-yunet-2023mar",
                                                                                 "face-sface-2021dec"]


def test_doctor_model_line_without_models(settings):
    level, detail = doctor_check(settings)
    [cmd] = commands_in(detail)
    assert level == "WARN" and parse(cmd, settings.data_dir).trust_on_first_use


def test_installed_box_hints_use_the_wrapper(tmp_path, monkeypatch):
    """On a box set up by scripts/install, `sudo photobox …` (its wrapper knows the data folder)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "photobox"
    script = (Path(__file__).resolve().parents[1] / "scripts" / "install").read_text()
    assert hints.WRAPPER_MARK in script  # the mark is what scripts/install writes
    wrapper.write_text(f"#!/bin/sh\n# photobox CLI for the installed service ({hints.WRAPPER_MARK})\nexit 0\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert hints.command(tmp_path / "data", "places", "install") == "sudo photobox places install"
    assert hints.command(None, "user", "set-password", public=True) == "sudo photobox user set-password"
