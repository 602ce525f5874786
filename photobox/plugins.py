"""The one seam every feature plugs into: built-in features and plugins use it alike.

A feature module creates ``feature = Feature("name")`` and declares, next to its own code,
everything the rest of photobox needs to know about it (Datasette's built-ins are plugins of
its own hooks in the same way):

* its **job kinds**: ``@feature.job("thumbs", title="Thumbnails", after="metadata")``: the
  handler, the title the Processing page shows, and, for a pipeline stage, the stage whose
  success queues it (``after``) and for which assets (``wanted``);
* its **periodic sweeps**: ``@feature.every(300, "face-scans")`` on ``fn(box)``; they should
  only queue jobs, so that the work itself is durable;
* its **doctor checks**: ``@feature.check("models")`` on ``fn(settings) -> (level, detail)``;
* its **CLI commands**: ``@feature.commands`` on ``fn(subparsers)``;
* its **routes**: ``@feature.routes`` on a function that imports and returns them (called only
  when the web app is built, so the CLI never loads the web code);
* work at **open**: ``@feature.on_open`` on ``fn(box)``, after the database is open;
* its **reference databases**: ``feature.attach("geo", "places.db")``;
* its **Settings page sections**: ``@feature.settings_section("settings_x.html")`` on ``load(box, conn)``;
* what it adds to the **viewer**: ``@feature.details`` on ``fn(conn, asset_id) -> dict`` and
  ``@feature.viewer_scope("search")`` for moving through its own results.

:func:`load_features` imports modules by name (the built-in ones listed in
:mod:`photobox.pipeline`, then the ``plugins`` setting) and returns their features; the core
iterates them and imports no feature itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from photobox.jobs.registry import JobRegistry, JobSpec

if TYPE_CHECKING:
    from photobox.cli.common import Commands
    from photobox.core import Photobox
    from photobox.settings import Settings

__all__ = ["Check", "Feature", "FeatureError", "Periodic", "SettingsSection", "Stage", "load_features"]

#: ``(level, detail)``: level is "OK", "WARN" or "FAIL".
CheckResult = tuple[str, str]


class FeatureError(RuntimeError):
    """A module named as a feature or plugin cannot be used (it says why)."""


def _always(kind: str, facts: Any) -> bool:
    return True


def _ready(box: Photobox) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Stage:
    """Where a job kind sits in the pipeline of each new file.

    Attributes:
        after: the stage whose success queues this one (e.g. ``"metadata"``, ``"thumbs"``).
        wanted: ``(asset kind, facts) -> bool``: whether this asset needs the stage; ``facts``
            is the metadata just read (after ``metadata``) or the asset row (later stages).
        batch: one job serves every waiting asset (target ``""``), e.g. embedding in batches.
        ready: ``box -> bool``: whether the stage can run at all now (e.g. its model is
            installed); when it cannot, nothing is queued and its periodic sweep catches up.
    """

    after: str
    wanted: Callable[[str, Any], bool] = _always
    batch: bool = False
    ready: Callable[[Photobox], bool] = _ready


@dataclass(frozen=True, slots=True)
class Periodic:
    """``fn(box)`` (async, or plain and then run in a thread) every ``seconds`` while serving."""

    seconds: float
    name: str
    fn: Callable[[Photobox], Any]


@dataclass(frozen=True, slots=True)
class Check:
    """A ``photobox doctor`` line: ``fn(settings) -> (level, detail)``."""

    name: str
    fn: Callable[[Settings], CheckResult]


@dataclass(frozen=True, slots=True)
class SettingsSection:
    """A section of the Settings page: ``template`` (included in the page) and ``load(box, conn)``,
    which returns the variables the template uses (merged into the page's context)."""

    template: str
    load: Callable[[Photobox, Any], dict[str, Any]]


@dataclass(eq=False)
class Feature:
    """What one feature adds to photobox; see the module docstring for how to declare it."""

    name: str
    jobs: list[JobSpec] = field(default_factory=list)
    stages: dict[str, Stage] = field(default_factory=dict)
    periodic: list[Periodic] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    command_adders: list[Callable[[Commands], None]] = field(default_factory=list)
    route_sources: list[Callable[[], Sequence[Any]]] = field(default_factory=list)
    openers: list[Callable[[Photobox], None]] = field(default_factory=list)
    databases: dict[str, str] = field(default_factory=dict)
    settings_sections: list[SettingsSection] = field(default_factory=list)
    asset_details: list[Callable[[Any, int], dict[str, Any]]] = field(default_factory=list)
    viewer_scopes: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def job(self, kind: str, *, title: str, concurrency: int | None = 1, priority: int = 0,
            max_attempts: int | None = None, after: str | None = None,
            wanted: Callable[[str, Any], bool] = _always, batch: bool = False,
            ready: Callable[[Photobox], bool] = _ready) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator on a handler ``fn(job)``: a job kind; with ``after``, also a pipeline stage.

        ``concurrency``, ``priority`` and ``max_attempts`` are as in :class:`JobSpec`.
        """

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.jobs.append(JobSpec(kind, fn, concurrency, priority, max_attempts, title))
            if after is not None:
                self.stages[kind] = Stage(after, wanted, batch, ready)
            return fn

        return decorate

    def every(self, seconds: float, name: str) -> Callable[[Callable[[Photobox], Any]], Callable[[Photobox], Any]]:
        """Decorator on ``fn(box)``: run it every ``seconds`` while photobox serves."""

        def decorate(fn: Callable[[Photobox], Any]) -> Callable[[Photobox], Any]:
            self.periodic.append(Periodic(seconds, name, fn))
            return fn

        return decorate

    def check(self, name: str) -> Callable[[Callable[[Settings], CheckResult]], Callable[[Settings], CheckResult]]:
        """Decorator on ``fn(settings) -> (level, detail)``: a ``photobox doctor`` line."""

        def decorate(fn: Callable[[Settings], CheckResult]) -> Callable[[Settings], CheckResult]:
            self.checks.append(Check(name, fn))
            return fn

        return decorate

    def commands(self, fn: Callable[[Commands], None]) -> Callable[[Commands], None]:
        """Decorator on ``fn(subparsers)`` that adds this feature's ``photobox`` commands."""
        self.command_adders.append(fn)
        return fn

    def routes(self, fn: Callable[[], Sequence[Any]]) -> Callable[[], Sequence[Any]]:
        """Decorator on a function returning route handlers (or routers). It is called only when
        the web app is built, so the CLI never imports the web code."""
        self.route_sources.append(fn)
        return fn

    def settings_section(self, template: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
        """Decorator on ``load(box, conn) -> dict``: a section of the Settings page, in ``template``."""

        def decorate(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
            self.settings_sections.append(SettingsSection(template, fn))
            return fn

        return decorate

    def details(self, fn: Callable[[Any, int], dict[str, Any]]) -> Callable[[Any, int], dict[str, Any]]:
        """Decorator on ``fn(conn, asset_id) -> dict``: what this feature knows of one photo, for
        the viewer (e.g. ``{"faces": [...]}``), read in the viewer's own read transaction."""
        self.asset_details.append(fn)
        return fn

    def viewer_scope(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator on ``async fn(request, box, asset_id) -> (scope, newer, older, back_url)``: how
        the viewer moves between photos opened from this feature's page (``?in=name``)."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.viewer_scopes[name] = fn
            return fn

        return decorate

    def attach(self, alias: str, file_name: str) -> None:
        """A reference database (e.g. the places gazetteer) in the data folder, ATTACHed as
        ``alias`` to every connection: re-installable data that backups leave out."""
        self.databases[alias] = file_name

    def on_open(self, fn: Callable[[Photobox], None]) -> Callable[[Photobox], None]:
        """Decorator on ``fn(box)``: run once the database is open (startup work of a feature)."""
        self.openers.append(fn)
        return fn


def load_features(names: Iterable[str]) -> list[Feature]:
    """Import each module and return its ``feature``, in order, each once.

    A module without a ``feature`` is imported for what importing it does (a plugin may only
    adjust a setting of photobox's own code) and contributes nothing else.

    Raises:
        FeatureError: a module cannot be imported, or its ``feature`` is not a :class:`Feature`.
    """
    features: list[Feature] = []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise FeatureError(f"cannot load the plugin {name!r}: {exc}") from exc
        feature = getattr(module, "feature", None)
        if feature is None:
            continue
        if not isinstance(feature, Feature):
            raise FeatureError(f"{name}.feature is not a photobox.plugins.Feature, so it cannot plug into photobox")
        if feature not in features:
            features.append(feature)
    return features


def job_registry(features: Iterable[Feature]) -> JobRegistry:
    """The job kinds of ``features`` (a kind declared twice is refused)."""
    registry = JobRegistry()
    for feature in features:
        for spec in feature.jobs:
            registry.add(spec)
    return registry


def iter_stages(features: Iterable[Feature]) -> Iterator[tuple[str, Stage]]:
    """Every ``(kind, stage)`` the features declare."""
    for feature in features:
        yield from feature.stages.items()
