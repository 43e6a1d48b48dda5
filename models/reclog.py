"""The recommendation log: what the service showed, to whom, with which model, and how likely each pick was.

Every recommendation and plan the service answers gets an id; what it showed is written here so that outcomes of
the campaigns that follow (``campaigns.recommendation_id``) can be joined back to what was shown and how each
creator came to be shown (its propensity). Training reads it (:func:`read_shown`); the service writes it through
:class:`RecommendationLog`, which never blocks or fails a request: records go through a bounded queue to one
background thread, and a full queue or a failing database drops the record and counts it.

Storage is a SQL database reached by URL through SQLAlchemy Core (SQLite by default, any SQLAlchemy URL in a real
deployment, e.g. ``postgresql+psycopg://…``): two tables, ``recommendations`` (one row per answer) and ``shown``
(one row per creator shown). SQLite files are opened in WAL mode with a busy timeout, so several worker
processes can append to one file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import polars as pl
import sqlalchemy as sa

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
KINDS = ("recommendation", "plan")

metadata = sa.MetaData()
RECOMMENDATIONS = sa.Table(
    "recommendations",
    metadata,
    sa.Column("recommendation_id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.String(40), nullable=False),  # ISO 8601 UTC
    sa.Column("kind", sa.String(20), nullable=False),  # KINDS
    sa.Column("brand_id", sa.String(128), nullable=True),  # the client's own reference, when it gave one
    sa.Column("segments", sa.Text, nullable=False),  # JSON list of {"id", "text", "weight", "countries"}
    sa.Column("objective", sa.String(20), nullable=False),
    sa.Column("k", sa.Integer, nullable=True),
    sa.Column("budget", sa.Float, nullable=True),
    sa.Column("exploration", sa.Float, nullable=False),  # share of exploratory picks asked for (0 = none)
    sa.Column("candidates", sa.Integer, nullable=False),  # how many candidates the picks were made from
    sa.Column("bundle_id", sa.String(64), nullable=False),
    sa.Column("model_source", sa.String(512), nullable=False),
    sa.Column("feature_set_id", sa.String(64), nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
)
SHOWN = sa.Table(
    "shown",
    metadata,
    sa.Column("recommendation_id", sa.String(64), sa.ForeignKey("recommendations.recommendation_id"), nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),  # 1-based, as in the response
    sa.Column("creator_id", sa.String(128), nullable=False),
    sa.Column("segment", sa.String(128), nullable=False),  # the matched segment's label
    # the ranking key: the objective's expected value (recommendations), the gain per unit of cost when picked (plans)
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("conversions", sa.Float, nullable=True),  # predicted expected conversions
    sa.Column("engagement_rate", sa.Float, nullable=True),  # predicted engagement rate
    sa.Column("price", sa.Float, nullable=True),  # expected price
    sa.Column("propensity", sa.Float, nullable=False),  # P(this creator is shown | the request), in (0, 1]
    sa.Column("explored", sa.Boolean, nullable=False),  # picked by exploration, not by rank
    sa.PrimaryKeyConstraint("recommendation_id", "creator_id"),
)


@dataclass(frozen=True)
class ShownCreator:
    """One creator of an answer, as shown."""

    rank: int
    creator_id: str
    segment: str
    score: float
    conversions: float | None
    engagement_rate: float | None
    price: float | None
    propensity: float
    explored: bool = False


@dataclass(frozen=True)
class Shown:
    """One answer of the service: a recommendation list or a plan."""

    recommendation_id: str
    created_at: str
    kind: str
    segments: list[dict[str, Any]]
    objective: str
    bundle_id: str
    model_source: str
    feature_set_id: str
    candidates: int
    creators: list[ShownCreator] = field(default_factory=list)
    brand_id: str | None = None
    k: int | None = None
    budget: float | None = None
    exploration: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for c in self.creators:
            if not 0.0 < c.propensity <= 1.0:
                raise ValueError(f"propensity of {c.creator_id!r} must be in (0, 1], got {c.propensity}")


def display_url(url: str) -> str:
    """``url`` as it may be shown (an error, a log line): the password hidden; an unparseable URL not shown."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<not a database URL>"


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url`` with the tables created; SQLite in WAL mode with a busy timeout.

    Raises ``ValueError`` naming the URL (password hidden) when it is not a usable SQLAlchemy URL (or its driver is
    not installed), and SQLAlchemy's ``OperationalError`` when the database cannot be reached or written.
    """
    try:
        parsed = sa.make_url(url)
        options: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            # One in-memory database shared by every thread (the writer's included), not one per connection.
            options = {"poolclass": sa.pool.StaticPool, "connect_args": {"check_same_thread": False}}
        engine = sa.create_engine(parsed, hide_parameters=True, **options)  # errors never quote the records
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        kind = type(exc).__name__
        raise ValueError(f"recommendation log URL {display_url(url)} is not usable ({kind})") from None
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA busy_timeout=5000")  # first: switching to WAL waits for other processes' locks
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    for attempt in range(3):
        try:
            metadata.create_all(engine)
            break
        except sa.exc.OperationalError:
            # Several worker processes create the tables at once: one wins, the others find them on a retry.
            if attempt == 2:
                engine.dispose()
                raise
            time.sleep(0.05 * (attempt + 1))
    return engine


_HEAD_FIELDS = tuple(f.name for f in fields(Shown) if f.name != "creators")
_CREATOR_FIELDS = tuple(f.name for f in fields(ShownCreator))


def write_now(engine: sa.Engine, records: Sequence[Shown]) -> None:
    """Write ``records`` in one transaction (all or none)."""
    if not records:
        return
    heads = []
    rows: list[dict[str, Any]] = []
    for r in records:
        # Field by field, not dataclasses.asdict (which deep-copies: 0.7 ms for a record of 20 creators, on the
        # writer thread that shares the GIL with the requests).
        head = {name: getattr(r, name) for name in _HEAD_FIELDS}
        head["segments"] = json.dumps(r.segments, ensure_ascii=False, sort_keys=True)
        head["schema_version"] = SCHEMA_VERSION
        heads.append(head)
        rid = r.recommendation_id
        rows.extend({"recommendation_id": rid, **{n: getattr(c, n) for n in _CREATOR_FIELDS}} for c in r.creators)
    with engine.begin() as conn:
        conn.execute(sa.insert(RECOMMENDATIONS), heads)
        if rows:
            conn.execute(sa.insert(SHOWN), rows)


LINGER_S = 0.1  # how long the writer waits for more records before a transaction (at most batch records each)
FAILURE_LOG_INTERVAL_S = 60.0  # a failing database is logged at most this often (with the counts so far)


class RecommendationLog:
    """Append-only log of what the service showed, written off the request path.

    ``submit`` never blocks and never raises: the record goes to a bounded queue, and one daemon thread writes
    queued records in batches (one transaction each). When the queue is full the record is dropped and counted
    (``dropped``); when the database fails the batch is dropped, counted (``failed``) and logged (the first failure
    with its traceback, then at most once a minute). ``close`` writes what is queued.
    """

    def __init__(self, url: str, *, queue_size: int = 10_000, batch: int = 200, linger: float = LINGER_S) -> None:
        if queue_size < 1 or batch < 1:
            raise ValueError(f"queue_size and batch must be at least 1, got {queue_size} and {batch}")
        if not 0.0 <= linger <= 10.0:
            raise ValueError(f"linger must be between 0 and 10 seconds, got {linger}")
        self.url = url
        self._engine = make_engine(url)
        self.backend = self._engine.dialect.name  # "sqlite", "postgresql", …: shown instead of the URL
        self._queue: queue.Queue[Shown | None] = queue.Queue(maxsize=queue_size)
        self._wake = threading.Event()  # set by flush and close: the writer stops lingering
        self._batch = batch
        self._linger = linger
        self._lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._last_failure_log = -math.inf
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="recommendation-log", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"RecommendationLog({display_url(self.url)!r})"

    def submit(self, record: Shown) -> bool:
        """Queue ``record``; False (and counted as dropped) when the queue is full or the log is closed."""
        if not self._closed:
            try:
                self._queue.put_nowait(record)
                return True
            except queue.Full:
                pass
        with self._lock:
            self.dropped += 1
        return False

    def count_failure(self, records: int = 1) -> None:
        """Count records that failed before reaching the log (e.g. a record that could not be built)."""
        with self._lock:
            self.failed += records

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch: list[Shown] = []
            taken = 1
            stop = first is None
            if first is not None:
                batch.append(first)
                # Linger: records that arrive meanwhile join this transaction. At the API's rates a batch would
                # otherwise be a single record, and a transaction per request costs ~3× the CPU per record of one
                # per 50 (the writer shares the process with the requests). The writer waits on an event, not on
                # the queue, so a request's submit wakes nobody; flush and close end the wait at once.
                if self._linger > 0 and self._queue.qsize() < self._batch - 1:
                    self._wake.wait(self._linger)
                self._wake.clear()
                while len(batch) < self._batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    taken += 1
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
            if batch:
                self._write(batch)
            for _ in range(taken):
                self._queue.task_done()
            if stop:
                return

    def _write(self, batch: list[Shown]) -> None:
        try:
            write_now(self._engine, batch)
        except Exception as exc:  # the log must never take the service down
            with self._lock:
                self.failed += len(batch)
                failed = self.failed
            now = time.monotonic()
            if now - self._last_failure_log >= FAILURE_LOG_INTERVAL_S:
                first = self._last_failure_log == -math.inf
                self._last_failure_log = now
                log.error(
                    "recommendation log write failed; the records are dropped",
                    exc_info=exc if first else None,
                    extra={
                        "records": len(batch),
                        "failed_total": failed,
                        "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300],
                    },
                )
        else:
            with self._lock:
                self.written += len(batch)

    @property
    def queued(self) -> int:
        """Records waiting to be written."""
        return self._queue.qsize()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is written or dropped; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            self._wake.set()  # again each time: the writer clears it when it takes the next batch
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread and the engine (later submits are dropped and counted)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._wake.set()
        self._thread.join(timeout)
        self._engine.dispose()

    def counts(self) -> dict[str, int]:
        """Records ``written``, ``dropped`` (queue full) and ``failed`` (database error) so far, and ``queued``."""
        with self._lock:
            return {"written": self.written, "dropped": self.dropped, "failed": self.failed, "queued": self.queued}


SHOWN_SCHEMA = pl.Schema(
    {
        "recommendation_id": pl.String(),
        "created_at": pl.String(),
        "kind": pl.String(),
        "brand_id": pl.String(),
        "objective": pl.String(),
        "exploration": pl.Float64(),
        "bundle_id": pl.String(),
        "feature_set_id": pl.String(),
        "rank": pl.Int64(),
        "creator_id": pl.String(),
        "segment": pl.String(),
        "score": pl.Float64(),
        "conversions": pl.Float64(),
        "engagement_rate": pl.Float64(),
        "price": pl.Float64(),
        "propensity": pl.Float64(),
        "explored": pl.Boolean(),
    }
)


def read_shown(url: str, recommendation_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """Every creator shown (``SHOWN_SCHEMA``), optionally only for the given answers; ordered by answer, rank."""
    engine = make_engine(url)
    try:
        r, s = RECOMMENDATIONS.c, SHOWN.c
        stmt = (
            sa.select(
                r.recommendation_id,
                r.created_at,
                r.kind,
                r.brand_id,
                r.objective,
                r.exploration,
                r.bundle_id,
                r.feature_set_id,
                s.rank,
                s.creator_id,
                s.segment,
                s.score,
                s.conversions,
                s.engagement_rate,
                s.price,
                s.propensity,
                s.explored,
            )
            .join(SHOWN, SHOWN.c.recommendation_id == RECOMMENDATIONS.c.recommendation_id)
            .order_by(r.created_at, r.recommendation_id, s.rank)
        )
        if recommendation_ids is not None:
            stmt = stmt.where(r.recommendation_id.in_(list(recommendation_ids)))
        with engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(stmt)]
    finally:
        engine.dispose()
    return pl.DataFrame(rows, schema=SHOWN_SCHEMA, orient="row")


def read_answers(url: str) -> pl.DataFrame:
    """One row per answer (the ``recommendations`` table), segments as JSON text."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.select(RECOMMENDATIONS).order_by(RECOMMENDATIONS.c.created_at))
            cols = list(result.keys())
            rows = [tuple(row) for row in result]
    finally:
        engine.dispose()
    # Every row read to type the columns: a float column whose first values are whole numbers (SQLite returns them
    # as integers) would otherwise be typed as integers and refuse the first fraction further down.
    return pl.DataFrame(rows, schema=cols, orient="row", infer_schema_length=None)
