"""The house plan holds: a plugin plugs in like a built-in feature, packages import each other
without cycles, the core imports no feature, and no module grows past 600 lines."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

from litestar.testing import TestClient

from photobox import auth
from photobox.core import Photobox
from photobox.library.commands import import_one
from photobox.pipeline import BUILTIN_FEATURES, order
from photobox.settings import load_settings
from photobox.web.app import create_app
from tests.gen import jpeg_bytes

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "photobox"
MAX_LINES = 600


def test_a_plugin_adds_a_job_kind_a_stage_and_a_route(tmp_path):
    """One module named in ``plugins`` adds a stage after thumbnails and a page, nothing else edited."""
    settings = load_settings({"data_dir": tmp_path / "data", "plugins": "tests.plugins.text_stage"}, env={})
    box = Photobox(settings).open()
    try:
        assert "test.text" in box.scheduler.registry
        assert box.scheduler.registry.titles()["test.text"] == "Text in photos"
        assert "thumbs   → clip, faces, test.text" in order(box.features)
        photo = tmp_path / "IMG_0001.jpg"
        photo.write_bytes(jpeg_bytes())
        asset_id = import_one(box, photo).asset_id
        asyncio.run(box.scheduler.run_until_idle())
        assert (box.path("cache", "text", f"{asset_id}.txt")).read_text() == f"text of asset {asset_id}"
        with box.db.transaction() as conn:
            auth.create_owner(conn, "owner", auth.hash_password("correct horse battery"))
            _, key = auth.create_api_key(conn, "test")
    finally:
        box.close()
    with TestClient(app=create_app(settings)) as client:
        assert client.get(f"/api/test/text/{asset_id}").status_code in (401, 303)  # the plugin's route is guarded too
        r = client.get(f"/api/test/text/{asset_id}", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.text == f"text of asset {asset_id}"


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (names for type hints, never run)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _imports(path: Path, module: str) -> set[str]:
    """Every photobox module ``path`` imports at run time, at any depth (function-level imports
    count too; imports for type hints only do not)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    type_only = _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("photobox")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.startswith("photobox"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _package(module: str) -> str:
    """``photobox.search.views`` → ``photobox.search``; a top-level module is its own package."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _package_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        src = _package(name)
        for target in _imports(path, name):
            if target in modules or any(m.startswith(target + ".") for m in modules):
                dst = _package(target)
                if dst != src:
                    graph.setdefault(src, set()).add(dst)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if state.get(node) is None and (found := visit(node)):
            return found
    return None


def test_packages_import_each_other_without_cycles():
    """Every import counts, module level or inside a function (``python -c`` over the AST)."""
    cycle = _cycle(_package_graph())
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)


FEATURE_PACKAGES = {_package(name) for name in BUILTIN_FEATURES}


def test_the_core_and_the_web_seam_import_no_feature():
    features = FEATURE_PACKAGES
    modules = _modules()
    for name in ("photobox.core", "photobox.plugins", "photobox.pipeline", "photobox.cli", "photobox.cli.common",
                 "photobox.doctor", *(n for n in modules if n.startswith("photobox.web."))):
        bad = sorted({_package(t) for t in _imports(modules[name], name)} & features - {_package(name)})
        assert not bad, f"{name} imports the feature(s) {bad}; features plug in through photobox.plugins"


def test_no_module_is_over_600_lines():
    big = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}, f"split these modules (at most {MAX_LINES} lines): {big}"
