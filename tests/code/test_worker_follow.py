"""How a worker of ``serve --workers N`` follows a reload another worker published
(``audiencefit.serving.workers.WorkerSync``): the same bundle directory is not loaded twice, but a registry alias is
resolved again, since a reload after ``promote`` publishes the very ``models:/audiencefit@champion`` every worker
started with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest


@dataclass
class FakeServing:
    bundle_source: Any
    model: object = object()
    features: Any = None


@dataclass
class FakeHolder:
    """Stands in for ``audiencefit.serving.state.ServingHolder``: records what the worker asks it to reload."""

    state: FakeServing
    reloads: list[tuple[Any, Any, bool]] = field(default_factory=list)

    def reload(self, source: Any, features: Any, keep_bundle: bool) -> SimpleNamespace:
        self.reloads.append((source, features, keep_bundle))
        return SimpleNamespace(state=SimpleNamespace(model=None))


class FakeMetrics:
    def set_model(self, *args: object) -> None:
        pass

    def refresh(self) -> None:
        pass


@pytest.mark.parametrize(
    ("source", "reloaded"),
    [
        ("models:/audiencefit@champion", True),  # an alias: resolved again (it may name a new version now)
        ("models:/audiencefit/3", False),  # a fixed version it already serves
        (Path("/srv/bundles/a"), False),  # a directory it already serves
    ],
)
def test_a_published_reload_of_the_same_source_is_followed_only_for_an_alias(
    source: Any, reloaded: bool, tmp_path: Path
) -> None:
    from audiencefit.serving.workers import WorkerSync

    class Features:
        path = tmp_path / "features"

    publisher, follower = WorkerSync(tmp_path, FakeMetrics()), WorkerSync(tmp_path, FakeMetrics())  # type: ignore[arg-type]
    holder = FakeHolder(FakeServing(bundle_source=source, features=Features()))
    follower._state = holder  # type: ignore[assignment]
    publisher.publish_reload(source, None)
    follower._follow()
    assert holder.reloads == ([(source, None, False)] if reloaded else [])
