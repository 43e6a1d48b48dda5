"""The recommendation log (models/reclog.py): what is written is what is read; it never blocks or raises."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from audiencefit.models import reclog
from audiencefit.models.reclog import RecommendationLog, Shown, ShownCreator, make_engine, read_answers, read_shown


def _record(rid: str, n: int = 3, brand: str | None = "brand-1") -> Shown:
    return Shown(
        recommendation_id=rid,
        created_at=f"2026-12-03T00:00:00.{len(rid):03d}+00:00",
        kind="recommendation",
        segments=[{"id": "fitness", "text": "people who lift", "weight": 1.0, "countries": []}],
        objective="conversions",
        bundle_id="b" * 16,
        model_source="/x/bundle",
        feature_set_id="f" * 16,
        candidates=200,
        brand_id=brand,
        k=n,
        exploration=0.5,
        creators=[
            ShownCreator(
                rank=i + 1,
                creator_id=f"cr{i:03d}",
                segment="fitness",
                score=10.0 - i,
                conversions=10.0 - i,
                engagement_rate=0.02,
                price=100.0,
                propensity=1.0 if i == 0 else 0.25,
                explored=i > 0,
            )
            for i in range(n)
        ],
    )


def test_written_records_read_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = RecommendationLog(url, queue_size=10)
    assert log.submit(_record("r1")) and log.submit(_record("r22", n=0, brand=None))
    assert log.flush(5)
    assert log.counts() == {"written": 2, "dropped": 0, "failed": 0, "queued": 0}
    log.close()
    shown = read_shown(url)
    assert shown["recommendation_id"].to_list() == ["r1"] * 3
    assert shown["creator_id"].to_list() == ["cr000", "cr001", "cr002"]
    assert shown["propensity"].to_list() == [1.0, 0.25, 0.25]
    assert shown["explored"].to_list() == [False, True, True]
    assert shown["brand_id"].to_list() == ["brand-1"] * 3
    answers = read_answers(url)
    assert sorted(answers["recommendation_id"].to_list()) == ["r1", "r22"]
    assert read_shown(url, ["r22"]).height == 0
    with sa.create_engine(url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_full_queue_drops_without_blocking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = reclog.write_now

    def slow(engine: sa.Engine, records: list[Shown]) -> None:
        release.wait(10)
        real(engine, records)

    monkeypatch.setattr(reclog, "write_now", slow)
    log = RecommendationLog(f"sqlite:///{tmp_path / 'log.db'}", queue_size=2, batch=1)
    started = time.perf_counter()
    results = [log.submit(_record(f"r{i}")) for i in range(50)]
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5  # submit never waits for the writer
    assert results.count(False) >= 47 and log.counts()["dropped"] == results.count(False)
    release.set()
    assert log.flush(5)
    assert log.counts()["written"] == results.count(True)
    log.close()


def test_a_failing_database_is_counted_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = RecommendationLog(url)
    with sa.create_engine(url).begin() as conn:  # the table goes away under the writer
        conn.exec_driver_sql("DROP TABLE shown")
    assert log.submit(_record("r1"))
    assert log.flush(5)
    assert log.counts()["failed"] == 1 and log.counts()["written"] == 0
    assert any("recommendation log write failed" in r.getMessage() for r in caplog.records)
    log.close()
    assert not log.submit(_record("r2"))  # closed: dropped and counted, never raised
    assert log.counts()["dropped"] == 1


def test_duplicate_id_fails_its_batch_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = RecommendationLog(url, batch=1)
    log.submit(_record("same"))
    log.submit(_record("same"))
    log.submit(_record("other"))
    log.flush(5)
    assert log.counts()["written"] == 2 and log.counts()["failed"] == 1
    log.close()
    assert set(read_shown(url)["recommendation_id"].to_list()) == {"same", "other"}


def test_bad_urls_are_refused_without_the_password() -> None:
    with pytest.raises(ValueError, match="not usable") as err:
        make_engine("postgresql+nodriver://user:s3cretpassw0rd@db.example/recs")
    assert "s3cretpassw0rd" not in str(err.value) and "***" in str(err.value)
    with pytest.raises(ValueError, match="ModuleNotFoundError") as err:  # a driver not installed here
        make_engine("postgresql+psycopg://user:s3cretpassw0rd@db.example/recs")
    assert "s3cretpassw0rd" not in str(err.value)
    with pytest.raises(ValueError, match="not a database URL"):
        make_engine("just some words")


def test_an_unwritable_sqlite_path_fails_at_open(tmp_path: Path) -> None:
    with pytest.raises(sa.exc.OperationalError):
        make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'log.db'}")


def test_two_writers_append_to_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    logs = [RecommendationLog(url), RecommendationLog(url)]  # as two worker processes do, each its own engine
    for i in range(40):
        logs[i % 2].submit(_record(f"r{i:02d}", n=2))
    for log in logs:
        log.close()
    assert sum(log.counts()["written"] for log in logs) == 40
    assert read_shown(url).height == 80


def test_propensity_outside_zero_one_is_refused() -> None:
    bad = ShownCreator(1, "c", "s", 1.0, None, None, None, propensity=0.0)
    with pytest.raises(ValueError, match="propensity"):
        Shown("r", "t", "recommendation", [], "conversions", "b", "m", "f", 1, creators=[bad])


def test_records_arriving_together_share_a_transaction_and_flush_ends_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = reclog.write_now

    def counted(engine: sa.Engine, records: list[Shown]) -> None:
        sizes.append(len(records))
        real(engine, records)

    monkeypatch.setattr(reclog, "write_now", counted)
    log = RecommendationLog(f"sqlite:///{tmp_path / 'log.db'}", linger=5.0)
    for i in range(5):
        assert log.submit(_record(f"r{i}"))
    started = time.perf_counter()
    assert log.flush(4)
    assert time.perf_counter() - started < 2.0  # the flush did not wait out the 5 s linger
    assert sizes == [5] and log.counts()["written"] == 5
    log.close()
    with pytest.raises(ValueError, match="linger"):
        RecommendationLog(f"sqlite:///{tmp_path / 'other.db'}", linger=-1)
