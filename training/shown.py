"""Join campaign outcomes to what the service showed: the recommendation log (``audiencefit.models.reclog``).

A campaign row with a ``recommendation_id`` is looked up in the log on (recommendation_id, creator_id). When the
log has that creator in that answer, the row gets what was shown: the creator's propensity (the probability it had
of being shown for that request), its rank, whether exploration picked it and the model bundle that answered
(columns ``SHOWN_COLUMNS``); ``from_recommendation`` is then true. Everything else counts as not from a
recommendation (weight 1 in training, ``audiencefit.training.weights``):

- ``missing_id``: the log has no answer with that id (another deployment's log, a typo, a log that was reset);
- ``creator_not_shown``: the answer exists but did not show that creator (the id was copied to the wrong row).

Joined rows are also checked against the answer, and disagreements are reported (the row stays joined: the
creator was shown in that answer with that propensity):

- ``segment_mismatch``: the answer named its segments by id and the campaign's ``segment_id`` is none of them;
- ``brand_mismatch``: the answer carried a brand reference and it is not the campaign's ``brand_id``.

None of these stops training: each is a warning with its count and a few campaign ids.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa

from audiencefit.features.errors import InputError
from audiencefit.logs import redact_url
from audiencefit.models.reclog import RECOMMENDATIONS, SHOWN_SCHEMA, make_engine, read_shown

log = logging.getLogger(__name__)

SHOWN_COLUMNS = {
    "shown_propensity": pl.Float64(),
    "shown_rank": pl.Int64(),
    "shown_explored": pl.Boolean(),
    "shown_bundle_id": pl.String(),
}
FROM_RECOMMENDATION = "from_recommendation"
EXAMPLES = 5  # campaign ids quoted per problem
ID_CHUNK = 500  # ids per IN (…) query: far below any database's parameter limit
ANSWER_SCHEMA = pl.Schema({"recommendation_id": pl.String(), "answer_brand_id": pl.String(), "segments": pl.String()})


@dataclass(frozen=True)
class ShownJoin:
    """How the campaigns' recommendation ids met the log."""

    with_id: int = 0  # campaign rows carrying a recommendation_id
    joined: int = 0  # of those, the creator was shown in that answer
    missing_id: int = 0  # the log has no answer with the id
    creator_not_shown: int = 0  # the answer exists, the creator is not among what it showed
    segment_mismatch: int = 0  # joined, but the campaign's segment is not one of the answer's segments
    brand_mismatch: int = 0  # joined, but the answer was for another brand reference
    log: str = ""  # the log's URL, password redacted
    log_found: bool = True  # False: a SQLite file that does not exist (nothing was read)
    examples: dict[str, list[str]] = field(default_factory=dict)  # problem → a few campaign ids

    def summary(self) -> dict[str, int]:
        return {
            "recommendation_ids": self.with_id,
            "recommendation_ids_joined": self.joined,
            "recommendation_ids_missing": self.missing_id,
            "recommendation_creator_not_shown": self.creator_not_shown,
            "recommendation_segment_mismatch": self.segment_mismatch,
            "recommendation_brand_mismatch": self.brand_mismatch,
        }

    def warnings(self) -> list[str]:
        """One line per problem, with its count and example campaign ids; empty when every id joined cleanly."""

        def eg(kind: str) -> str:
            ids = self.examples.get(kind, [])
            return f" (e.g. campaign {', '.join(ids)})" if ids else ""

        out = []
        where = f"the recommendation log {self.log}" + ("" if self.log_found else " (which does not exist)")
        if self.missing_id:
            out.append(
                f"{self.missing_id} of {self.with_id} campaign rows carry a recommendation_id that {where} does not "
                f"know{eg('missing_id')}; they are treated as not from recommendations (weight 1)"
            )
        if self.creator_not_shown:
            out.append(
                f"{self.creator_not_shown} of {self.with_id} campaign rows name a recommendation that did not show "
                f"their creator{eg('creator_not_shown')}; they are treated as not from recommendations (weight 1)"
            )
        if self.segment_mismatch:
            out.append(
                f"{self.segment_mismatch} campaign rows target a segment that is not one of their recommendation's "
                f"segments{eg('segment_mismatch')}; kept with the logged propensity"
            )
        if self.brand_mismatch:
            out.append(
                f"{self.brand_mismatch} campaign rows belong to another brand than their recommendation was made "
                f"for{eg('brand_mismatch')}; kept with the logged propensity"
            )
        return out


def _examples(frame: pl.DataFrame, mask: pl.Series) -> list[str]:
    return frame.filter(mask)["campaign_id"].head(EXAMPLES).to_list()


def _answer_segment_ids(segments_json: str | None) -> list[str]:
    """The segment ids an answer was asked for (its JSON ``segments``); empty when it named none."""
    if not segments_json:
        return []
    try:
        segments: Any = json.loads(segments_json)
    except ValueError:
        return []
    if not isinstance(segments, list):
        return []
    return [str(s["id"]) for s in segments if isinstance(s, dict) and s.get("id")]


def join_shown(
    frame: pl.DataFrame, shown: pl.DataFrame, answers: pl.DataFrame | None = None, *, log_name: str = ""
) -> tuple[pl.DataFrame, ShownJoin]:
    """``frame`` (campaign rows with campaign_id, brand_id, segment_id, creator_id, recommendation_id) with
    ``SHOWN_COLUMNS`` and ``from_recommendation`` added, and the join's report. Pure.

    ``shown`` is :func:`audiencefit.models.reclog.read_shown`'s frame (``SHOWN_SCHEMA``); ``answers``
    (recommendation_id, answer_brand_id, segments JSON) enables the segment and brand checks.
    """
    for col in ("campaign_id", "brand_id", "segment_id", "creator_id", "recommendation_id"):
        if col not in frame.columns:
            raise ValueError(f"campaign rows need a {col!r} column to be joined to the recommendation log")
    frame = frame.drop([c for c in (*SHOWN_COLUMNS, FROM_RECOMMENDATION) if c in frame.columns])
    log_rows = shown.select(
        "recommendation_id",
        "creator_id",
        pl.col("propensity").alias("shown_propensity"),
        pl.col("rank").alias("shown_rank"),
        pl.col("explored").alias("shown_explored"),
        pl.col("bundle_id").alias("shown_bundle_id"),
        pl.col("segment").alias("_shown_segment"),
    ).unique(["recommendation_id", "creator_id"], keep="first", maintain_order=True)
    out = frame.join(
        log_rows, on=["recommendation_id", "creator_id"], how="left", nulls_equal=False, maintain_order="left"
    )
    has_id = out["recommendation_id"].is_not_null()
    joined = out["shown_propensity"].is_not_null()
    known_ids = shown["recommendation_id"].unique().implode()
    id_known = out["recommendation_id"].is_in(known_ids).fill_null(False)
    missing = has_id & ~id_known
    not_shown = has_id & id_known & ~joined

    segment_bad = pl.Series([False] * out.height)
    brand_bad = pl.Series([False] * out.height)
    if answers is not None and answers.height:
        ans = answers.select("recommendation_id", "answer_brand_id", "segments").unique(
            "recommendation_id", keep="first", maintain_order=True
        )
        ans = ans.with_columns(
            _segment_ids=pl.Series(
                [_answer_segment_ids(s) for s in ans["segments"].to_list()], dtype=pl.List(pl.String())
            )
        ).drop("segments")
        checked = out.select("recommendation_id", "brand_id", "segment_id", "_shown_segment").join(
            ans, on="recommendation_id", how="left", maintain_order="left"
        )
        seg_ids = checked["_segment_ids"].to_list()
        segs = checked["segment_id"].to_list()
        labels = checked["_shown_segment"].to_list()
        segment_bad = pl.Series(
            [
                bool(ids) and seg != label and seg not in ids
                for ids, seg, label in zip(seg_ids, segs, labels, strict=True)
            ]
        )
        brand_bad = (
            checked["answer_brand_id"].is_not_null() & (checked["answer_brand_id"] != checked["brand_id"])
        ).fill_null(False)
        segment_bad = segment_bad & joined
        brand_bad = brand_bad & joined
    out = out.drop("_shown_segment").with_columns(pl.Series(FROM_RECOMMENDATION, joined.to_numpy()))
    report = ShownJoin(
        with_id=int(has_id.sum()),
        joined=int(joined.sum()),
        missing_id=int(missing.sum()),
        creator_not_shown=int(not_shown.sum()),
        segment_mismatch=int(segment_bad.sum()),
        brand_mismatch=int(brand_bad.sum()),
        log=log_name,
        examples={
            name: ex
            for name, mask in (
                ("missing_id", missing),
                ("creator_not_shown", not_shown),
                ("segment_mismatch", segment_bad),
                ("brand_mismatch", brand_bad),
            )
            if (ex := _examples(out, mask))
        },
    )
    return out, report


def _sqlite_file_missing(url: str) -> bool:
    """True for a SQLite URL whose database file does not exist (opening it would create an empty one)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"recommendation log URL {redact_url(url)!r} is not usable: {exc}") from exc
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return False
    return not Path(database).exists()


def read_answers_of(url: str, ids: list[str]) -> pl.DataFrame:
    """recommendation_id, answer_brand_id and segments (JSON) of the given answers."""
    engine = make_engine(url)
    rows: list[tuple[Any, ...]] = []
    try:
        r = RECOMMENDATIONS.c
        with engine.connect() as conn:
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ids[start : start + ID_CHUNK]
                stmt = sa.select(r.recommendation_id, r.brand_id, r.segments).where(r.recommendation_id.in_(chunk))
                rows.extend(tuple(row) for row in conn.execute(stmt))
    finally:
        engine.dispose()
    return pl.DataFrame(rows, schema=ANSWER_SCHEMA, orient="row")


def attach_shown(frame: pl.DataFrame, url: str) -> tuple[pl.DataFrame, ShownJoin]:
    """:func:`join_shown` against the log at ``url``, reading only the answers the campaigns name.

    Without any recommendation_id nothing is read. A SQLite log file that does not exist is not created: every id
    is then missing (a warning). A URL that cannot be used, or a log that cannot be read, raises ``InputError``
    naming the (redacted) URL: training on without the log would silently drop the correction.
    """
    name = redact_url(url)
    ids = frame["recommendation_id"].drop_nulls().unique().sort().to_list()
    if not ids:
        return join_shown(frame, SHOWN_SCHEMA.to_frame(), None, log_name=name)
    try:
        if _sqlite_file_missing(url):
            out, report = join_shown(frame, SHOWN_SCHEMA.to_frame(), None, log_name=name)
            return out, replace(report, log_found=False)
        parts = [read_shown(url, ids[start : start + ID_CHUNK]) for start in range(0, len(ids), ID_CHUNK)]
        answers = read_answers_of(url, ids)
    except (ValueError, sa.exc.SQLAlchemyError) as exc:
        detail = redact_url(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise InputError(
            f"the recommendation log {name} cannot be read ({detail}); {len(ids)} campaign recommendation ids need it "
            "(set AUDIENCEFIT_RECOMMENDATION_LOG_URL)"
        ) from exc
    shown = pl.concat(parts) if parts else SHOWN_SCHEMA.to_frame()
    return join_shown(frame, shown, answers, log_name=name)


def propensities(frame: pl.DataFrame) -> np.ndarray:
    """Per row: the logged propensity of a row from a recommendation, NaN otherwise
    (``audiencefit.training.weights``)."""
    if "shown_propensity" not in frame.columns:
        return np.full(frame.height, np.nan)
    return frame["shown_propensity"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
