"""Shared fixtures: real SQLite files in tmp_path, a real app, a frozen clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from photobox.core import Photobox
from photobox.settings import Settings, load_settings
from photobox.web.app import create_app

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
PASSWORD = "correct horse battery"


class FrozenClock:
    """A clock tests move by hand (Litestar's store tests do the same instead of sleeping)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"data_dir": tmp_path / "data", "workers": 2}, env={})


@pytest.fixture
def box(settings: Settings) -> Iterator[Photobox]:
    instance = Photobox(settings).open()
    yield instance
    instance.close()


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(app=create_app(settings)) as test_client:
        yield test_client


def do_setup(client: TestClient, username: str = "alice", password: str = PASSWORD):
    page = client.get("/setup")
    assert page.status_code == 200, page.text
    return client.post("/setup", data={"username": username, "password": password, "password2": password,
                                        "csrf_token": csrf_from(page.text)}, follow_redirects=False)


@pytest.fixture
def owner_client(client: TestClient) -> TestClient:
    """A client logged in as the owner (created through the real setup form)."""
    response = do_setup(client)
    assert response.status_code == 303, response.text
    return client
