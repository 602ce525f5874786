"""Fixtures for the model tests: tiny generated models, a manifest for them, a local server.

Nothing here touches the network: files come from ``file://`` URLs or from an
``http.server`` bound to 127.0.0.1 (see :func:`tests.ml.helpers.serve`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from photobox.ml.fetch import FetchResult, fetch_model
from tests.ml.helpers import file_override, serve, write_manifest
from tests.ml.tinymodels import TinyModelFiles, tiny_manifest, write_tiny_models


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyModelFiles:
    """The tiny models, laid out like the hub repository (``visual/``, ``textual/``)."""
    return write_tiny_models(tmp_path_factory.mktemp("tiny-repo"))


@pytest.fixture
def manifests_dir(tmp_path: Path, tiny: TinyModelFiles) -> Path:
    folder = tmp_path / "manifests"
    write_manifest(folder, tiny_manifest(tiny, default=True))
    return folder


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "models"


@pytest.fixture
def installed(models_dir: Path, manifests_dir: Path, tiny: TinyModelFiles) -> FetchResult:
    """models_dir with the tiny model fetched (from file:// URLs) and quantized."""
    return fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=manifests_dir)


@pytest.fixture
def http_repo(tiny: TinyModelFiles) -> Iterator[tuple[str, list[str]]]:
    """The tiny repository served over HTTP: ``(base_url, requested_paths)``."""
    with serve(tiny.root) as served:
        yield served
