"""Brief evaluation: does reading a marketer's brief (``audiencefit.models.brief``) rank creators as well as
hand-written segments?

    python -m audiencefit.training.brief_eval --features FEATURES (--world WORLD | --truth TRUTH.parquet)
        [--briefs BRIEFS.jsonl] [--category-map MAP.json] [--k 50] [--product-weights 0,0.25]
        [--subset all|even|odd] [--out TABLE.md]

Every brief of ``--briefs`` (default: ``training/data/briefs.jsonl``, 75 briefs in marketers' styles and six
languages, most of them selling a product of one category to an audience of another) is answered three ways, each
ranking the feature set's creators in the default follower range by the service's combined audience fit
(``audiencefit.models.pair_features.fit_scores(...).combined``, what objective ``fit`` ranks by):

- **brief reader**: the segments :func:`audiencefit.models.brief.read_brief` derives from the brief alone (one row per
  ``--product-weights`` value: the weight of the product context as a segment, relative to the audience);
- **hand-written segment**: the brief's ``segment`` (what a marketer would type as the segment);
- **brief as one segment**: the whole brief as the one segment (the behaviour before the reader);
- **audience clauses as written** (when the briefs have ``audience_clauses``): the brief's own words naming the
  audience, cut out by hand, one segment each (the whole brief when it names none): what a perfect reader would send.

Against the truth: precision@k (share of the top k whose main category is one of the brief's ``audience``
categories) and NDCG@k (graded by the creator's weight in those categories). Reported overall, for the briefs whose
product and audience differ ("mismatched"), and per style, order and language.

Truth, either
- ``--world WORLD``: a synthetic world's ``truth/creators.parquet``: each creator's weight in a topic is its
  authenticity × the share of its real followers interested in the topic; its main category is its audience's
  main topic; or
- ``--truth PATH``: a parquet with columns ``creator_id`` (str) and ``category`` (str), optionally ``weight``
  (float, default 1; several rows per creator allowed). Categories are the topic names of
  ``features/synthetic/topics.py`` (the briefs' ``audience``); a dataset with its own categories passes
  ``--category-map``, a JSON object from its category to a list of topic names. Creators missing from the truth
  are left out of the ranking; briefs whose audience no creator of the truth has are skipped (and counted).
  ``training/data/youtube_categories.json`` maps YouTube's video categories (the public trending-videos data that
  ``audiencefit.training.real_data`` loads) onto the topics.

The functions are importable: :func:`load_briefs`, :func:`world_truth`, :func:`read_truth`,
:func:`evaluate_briefs` (one row per brief and method) and :func:`summarize` / :func:`markdown`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from audiencefit.features.embed import Embedder
from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FeatureSet, load_feature_set
from audiencefit.models.brief import PRODUCT_WEIGHT, read_brief
from audiencefit.models.pair_features import BrandQuery, fit_scores
from audiencefit.models.query import Filters, Segment, allowed_mask, embed_segments, query_embedder, validate_segments
from audiencefit.training.retrieval_eval import ndcg_at

DEFAULT_BRIEFS = Path(__file__).parent / "data" / "briefs.jsonl"
BRIEF_FIELDS = ("id", "style", "order", "language", "product_topic", "audience", "text", "segment")
METHOD_READER = "brief reader"
METHOD_SEGMENT = "hand-written segment"
METHOD_WHOLE = "brief as one segment"
METHOD_CLAUSES = "audience clauses as written"
SUBSETS = ("all", "even", "odd")
TRUTH_SCHEMA = {"creator_id": pl.String(), "category": pl.String(), "weight": pl.Float64()}


@dataclass(frozen=True)
class Brief:
    """One evaluation brief: the text a marketer writes, who it means to reach, and the segment they would type."""

    id: str
    style: str  # one-liner, paragraph, bullets
    order: str  # product-first, audience-first, product-only
    language: str
    product_topic: str
    audience: tuple[str, ...]  # intended audience, as categories (topic names)
    text: str
    segment: str
    audience_clauses: tuple[str, ...] = ()  # the brief's own words naming the audience, cut out by hand (optional)

    @property
    def mismatched(self) -> bool:
        return self.product_topic not in self.audience


def load_briefs(path: Path = DEFAULT_BRIEFS) -> list[Brief]:
    """The briefs of a JSON Lines file (fields ``BRIEF_FIELDS``); every problem is reported with its line."""
    if not path.is_file():
        raise InputError(f"{path}: no such briefs file")
    briefs: list[Brief] = []
    problems: list[str] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: not JSON ({exc.msg})")
            continue
        if not isinstance(rec, dict):
            problems.append(f"line {n}: not a JSON object")
            continue
        missing = [f for f in BRIEF_FIELDS if f not in rec]
        if missing:
            problems.append(f"line {n}: missing {missing}")
            continue
        audience = rec["audience"]
        if not isinstance(audience, list) or not audience or not all(isinstance(a, str) and a for a in audience):
            problems.append(f"line {n}: audience must be a non-empty list of category names")
            continue
        texts = [rec[f] for f in BRIEF_FIELDS if f != "audience"]
        if not all(isinstance(t, str) and t.strip() for t in texts):
            problems.append(f"line {n}: {', '.join(f for f in BRIEF_FIELDS if f != 'audience')} must be non-empty text")
            continue
        clauses = rec.get("audience_clauses", [])
        if not isinstance(clauses, list) or not all(isinstance(c, str) and c.strip() for c in clauses):
            problems.append(f"line {n}: audience_clauses must be a list of non-empty texts")
            continue
        if rec["id"] in seen:
            problems.append(f"line {n}: duplicate id {rec['id']!r}")
            continue
        seen.add(rec["id"])
        briefs.append(
            Brief(
                id=rec["id"],
                style=rec["style"],
                order=rec["order"],
                language=rec["language"],
                product_topic=rec["product_topic"],
                audience=tuple(audience),
                text=rec["text"],
                segment=rec["segment"],
                audience_clauses=tuple(clauses),
            )
        )
    if problems:
        raise InputError(f"{path}: " + "; ".join(problems))
    if not briefs:
        raise InputError(f"{path}: no briefs")
    return briefs


def subset_of(briefs: Sequence[Brief], subset: str) -> list[Brief]:
    """All briefs, or those on even or odd lines of the file (counted among the briefs, from 1)."""
    if subset not in SUBSETS:
        raise InputError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    if subset == "all":
        return list(briefs)
    parity = 0 if subset == "even" else 1
    return [b for n, b in enumerate(briefs, start=1) if n % 2 == parity]


def world_truth(world_dir: Path) -> pl.DataFrame:
    """A synthetic world's truth as (creator_id, category, weight): authenticity × share of real followers per
    topic (``truth/creators.parquet``, topics named by ``truth/topics.parquet``)."""
    creators_path, topics_path = world_dir / "truth" / "creators.parquet", world_dir / "truth" / "topics.parquet"
    for p in (creators_path, topics_path):
        if not p.is_file():
            raise InputError(f"{world_dir}: not a synthetic world with truth ({p} is missing)")
    names = pl.read_parquet(topics_path).sort("topic_id")["name"].to_list()
    creators = pl.read_parquet(creators_path, columns=["creator_id", "authenticity", "audience_topics"])
    mix = np.asarray(creators["audience_topics"].to_list(), dtype=np.float64)
    if mix.ndim != 2 or mix.shape[1] != len(names):
        raise InputError(
            f"{creators_path}: audience_topics has {mix.shape[-1]} topics, {topics_path} names {len(names)}"
        )
    weight = mix * creators["authenticity"].to_numpy()[:, None]
    n, t = weight.shape
    return pl.DataFrame(
        {
            "creator_id": np.repeat(creators["creator_id"].to_numpy(), t),
            "category": np.tile(np.array(names, dtype=object), n),
            "weight": weight.reshape(-1),
        },
        schema=TRUTH_SCHEMA,
    )


def read_truth(path: Path, category_map: dict[str, list[str]] | None = None) -> pl.DataFrame:
    """A truth parquet (creator_id, category[, weight]) checked, with categories mapped onto topic names."""
    if not path.is_file():
        raise InputError(f"{path}: no such truth file")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a file that is not parquet
        raise InputError(f"{path}: not a readable parquet file ({exc})") from exc
    missing = [c for c in ("creator_id", "category") if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; need creator_id, category and optionally weight")
    if "weight" not in frame.columns:
        frame = frame.with_columns(weight=pl.lit(1.0))
    try:
        frame = frame.select(
            pl.col("creator_id").cast(pl.String), pl.col("category").cast(pl.String), pl.col("weight").cast(pl.Float64)
        )
    except pl.exceptions.InvalidOperationError as exc:
        raise InputError(f"{path}: weight must be numeric ({exc})") from exc
    bad = frame.filter(
        pl.col("creator_id").is_null() | pl.col("category").is_null() | ~pl.col("weight").is_finite().fill_null(False)
    )
    if bad.height:
        raise InputError(f"{path}: {bad.height} row(s) with a null id or category or a non-finite weight")
    if (frame["weight"] < 0).any():
        raise InputError(f"{path}: weights must be ≥ 0")
    if category_map is not None:
        mapping = pl.DataFrame(
            [(k, v) for k, vs in category_map.items() for v in vs], schema=["category", "topic"], orient="row"
        )
        frame = (
            frame.join(mapping, on="category", how="inner")
            .select("creator_id", pl.col("topic").alias("category"), "weight")
            .group_by("creator_id", "category")
            .agg(pl.col("weight").max())
        )
    if frame.height == 0:
        raise InputError(f"{path}: no creator has a category" + (" after --category-map" if category_map else ""))
    return frame.select(pl.col(c).cast(t) for c, t in TRUTH_SCHEMA.items())


@dataclass(frozen=True)
class _Truth:
    rows: np.ndarray  # feature-set rows ranked (in the truth and allowed by the filters)
    weights: np.ndarray  # (len(rows), n_categories)
    main: np.ndarray  # (len(rows), n_categories) bool: the creator's main category (ties: all of them)
    categories: dict[str, int]


def _truth_matrix(fs: FeatureSet, truth: pl.DataFrame, filters: Filters) -> _Truth:
    allowed = np.flatnonzero(allowed_mask(fs, filters))
    ids = fs.creators["creator_id"].gather(allowed)
    if "weight" not in truth.columns:
        truth = truth.with_columns(weight=pl.lit(1.0))
    wide = (
        truth.filter(pl.col("creator_id").is_in(ids.implode()))
        .group_by("creator_id", "category")
        .agg(pl.col("weight").sum())
        .pivot(on="category", index="creator_id", values="weight")
        .fill_null(0.0)
    )
    if wide.height == 0:
        raise InputError("no creator of the feature set (in the default follower range) is in the truth")
    categories = sorted(c for c in wide.columns if c != "creator_id")
    row_of = dict(zip(ids.to_list(), allowed.tolist(), strict=True))
    wide = wide.with_columns(row=pl.col("creator_id").replace_strict(row_of, return_dtype=pl.Int64)).sort("row")
    weights = wide.select(categories).to_numpy().astype(np.float64)
    top = weights.max(axis=1, keepdims=True)
    main = (weights >= top) & (top > 0)
    return _Truth(wide["row"].to_numpy(), weights, main, {c: i for i, c in enumerate(categories)})


def _segments_for(brief: Brief, method: str, product_weight: float) -> list[Segment]:
    if method == METHOD_SEGMENT:
        return [Segment(text=brief.segment)]
    if method == METHOD_WHOLE or (method == METHOD_CLAUSES and not brief.audience_clauses):
        return [Segment(text=brief.text)]
    if method == METHOD_CLAUSES:
        return [Segment(text=c, segment_id=f"clause {i + 1}") for i, c in enumerate(brief.audience_clauses)]
    reading = read_brief(brief.text, product_weight=product_weight)
    return [Segment(text=s.text, weight=s.weight, segment_id=s.id) for s in reading.segments]


def evaluate_briefs(
    fs: FeatureSet,
    embedder: Embedder,
    briefs: Sequence[Brief],
    truth: pl.DataFrame,
    *,
    k: int = 50,
    product_weights: Sequence[float] = (PRODUCT_WEIGHT,),
    filters: Filters | None = None,
) -> pl.DataFrame:
    """One row per (brief, method): precision@k and NDCG@k of the ranking by combined audience fit.

    ``truth`` is (creator_id, category[, weight]) as :func:`world_truth` or :func:`read_truth` give it. Briefs whose
    audience categories no ranked creator has are left out (see :func:`skipped_briefs`).
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    t = _truth_matrix(fs, truth, filters or Filters())
    methods = [(f"{METHOD_READER} (product weight {w:g})", w) for w in product_weights]
    methods += [(METHOD_SEGMENT, 0.0), (METHOD_WHOLE, 0.0)]
    if any(b.audience_clauses for b in briefs):
        methods.append((METHOD_CLAUSES, 0.0))
    records = []
    for brief in briefs:
        cols = [t.categories[c] for c in brief.audience if c in t.categories]
        if not cols:
            continue
        gains = t.weights[:, cols].sum(axis=1)
        relevant: np.ndarray = np.asarray(t.main[:, cols].any(axis=1))
        for name, weight in methods:
            base = METHOD_READER if name.startswith(METHOD_READER) else name
            segments = validate_segments(_segments_for(brief, base, weight))
            vecs = embed_segments(segments, embedder)
            seg_weights = np.array([s.weight for s in segments], dtype=np.float64)
            score = fit_scores(fs, t.rows, BrandQuery(segments, vecs)).combined(seg_weights).astype(np.float64)
            order = np.lexsort((t.rows, -score))  # best fit first, then feature-set row: deterministic
            records.append(
                {
                    "brief_id": brief.id,
                    "style": brief.style,
                    "order": brief.order,
                    "language": brief.language,
                    "mismatched": brief.mismatched,
                    "method": name,
                    "segments": len(segments),
                    "read_as_written": reads_as_written(brief),
                    f"precision@{k}": float(relevant[order[:k]].mean()),
                    f"ndcg@{k}": ndcg_at(order, gains, k),
                }
            )
    return pl.DataFrame(records)


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("—", " ").strip(" .,;:!?").split())


def reads_as_written(brief: Brief) -> bool | None:
    """Whether the reader's audience clauses (without their cores and English words) are the brief's
    ``audience_clauses`` (compared without case, spacing and end punctuation); None when the brief has none."""
    if not brief.audience_clauses:
        return None
    reading = read_brief(brief.text)
    found = sorted(_norm(s.text) for s in reading.segments if s.is_clause)
    return found == sorted(_norm(c) for c in brief.audience_clauses)


def skipped_briefs(briefs: Sequence[Brief], truth: pl.DataFrame) -> list[str]:
    """Ids of the briefs none of whose audience categories appear in the truth."""
    present = set(truth["category"].unique().to_list())
    return [b.id for b in briefs if not present.intersection(b.audience)]


def summarize(results: pl.DataFrame, k: int = 50) -> pl.DataFrame:
    """Mean precision@k and NDCG@k per method, over all briefs, the mismatched ones, and each style, order and
    language (columns: group, value, method, briefs, precision@k, ndcg@k)."""
    p, n = f"precision@{k}", f"ndcg@{k}"
    frames = [
        results.with_columns(group=pl.lit("all"), value=pl.lit("all")),
        results.filter(pl.col("mismatched")).with_columns(group=pl.lit("product ≠ audience"), value=pl.lit("yes")),
    ]
    for col in ("style", "order", "language"):
        frames.append(results.with_columns(group=pl.lit(col), value=pl.col(col)))
    return (
        pl.concat(frames)
        .group_by("group", "value", "method", maintain_order=True)
        .agg(pl.len().alias("briefs"), pl.col(p).mean(), pl.col(n).mean())
        .sort("group", "value", "method", maintain_order=True)
    )


def markdown(summary: pl.DataFrame, k: int = 50) -> str:
    """The summary as a markdown table: one row per group value, one precision / NDCG column pair per method."""
    methods = summary["method"].unique(maintain_order=True).to_list()
    head = "| group | briefs | " + " | ".join(f"{m}: P@{k} / NDCG@{k}" for m in methods) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(methods)]
    order = {"all": 0, "product ≠ audience": 1, "style": 2, "order": 3, "language": 4}
    keys = sorted(
        {(g, v) for g, v in summary.select("group", "value").iter_rows()}, key=lambda gv: (order.get(gv[0], 9), gv[1])
    )
    for group, value in keys:
        part = summary.filter((pl.col("group") == group) & (pl.col("value") == value))
        cells = []
        for m in methods:
            row = part.filter(pl.col("method") == m)
            cells.append(f"{row[f'precision@{k}'][0]:.3f} / {row[f'ndcg@{k}'][0]:.3f}" if row.height else "–")
        label = group if group in (value, "product ≠ audience") else f"{group}: {value}"
        lines.append(f"| {label} | {part['briefs'][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _product_weights(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--product-weights takes numbers separated by commas, got {text!r}") from exc
    if not values or any(not np.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"--product-weights must be finite numbers ≥ 0, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Rank creators for marketers' briefs three ways (brief reader, hand-written segment, brief as "
        "one segment) and report precision@k / NDCG@k against a truth."
    )
    parser.add_argument("--features", type=Path, required=True, help="The feature set to rank (a features dir).")
    truth_group = parser.add_mutually_exclusive_group(required=True)
    truth_group.add_argument("--world", type=Path, help="A synthetic world dir: the truth is its truth/creators.")
    truth_group.add_argument("--truth", type=Path, help="A parquet of creator_id, category[, weight].")
    parser.add_argument("--briefs", type=Path, default=DEFAULT_BRIEFS, help="Briefs, JSON Lines (default: ours).")
    parser.add_argument(
        "--category-map", type=Path, help="JSON object: the truth's category → list of topic names (with --truth)."
    )
    parser.add_argument("--k", type=int, default=50, help="Cut-off of precision and NDCG (default 50).")
    parser.add_argument(
        "--product-weights",
        type=_product_weights,
        default=[PRODUCT_WEIGHT],
        help=f"Product-segment weights to evaluate the reader with, comma-separated (default {PRODUCT_WEIGHT:g}).",
    )
    parser.add_argument(
        "--all-creators",
        action="store_true",
        help="Rank every creator, not only those of the default follower range 1k–100k (for exports whose follower "
        "counts are missing or a proxy).",
    )
    parser.add_argument(
        "--subset",
        choices=SUBSETS,
        default="all",
        help="Evaluate all briefs, or only those on even or odd lines of the briefs file (decide changes to the "
        "reader on one half, report the other: the halves keep it honest about tuning to the set).",
    )
    parser.add_argument("--per-brief", type=Path, help="Also write one row per brief and method to this CSV.")
    parser.add_argument("--out", type=Path, help="Also write the markdown table to this file.")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be at least 1")
    if args.category_map is not None and args.truth is None:
        parser.error("--category-map goes with --truth")
    try:
        briefs = subset_of(load_briefs(args.briefs), args.subset)
        mapping = None
        if args.category_map is not None:
            try:
                mapping = json.loads(args.category_map.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(f"{args.category_map}: not a readable JSON file ({exc})") from exc
            if not isinstance(mapping, dict) or not all(
                isinstance(v, list) and all(isinstance(x, str) for x in v) for v in mapping.values()
            ):
                raise InputError(f"{args.category_map}: must be an object of category → list of topic names")
        truth = world_truth(args.world) if args.world is not None else read_truth(args.truth, mapping)
        fs = load_feature_set(args.features, verify_checksums=False)
        filters = Filters(min_followers=0, max_followers=2**62) if args.all_creators else None
        results = evaluate_briefs(
            fs, query_embedder(fs), briefs, truth, k=args.k, product_weights=args.product_weights, filters=filters
        )
        if results.height == 0:
            raise InputError("no brief's audience is among the truth's categories")
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    table = markdown(summarize(results, args.k), args.k)
    skipped = skipped_briefs(briefs, truth)
    note = f"\n{results['brief_id'].n_unique()} briefs ranked; {len(skipped)} skipped (audience not in the truth)\n"
    written = results.filter(pl.col("method") == METHOD_SEGMENT)["read_as_written"].drop_nulls()
    if written.len():
        note += f"the reader found exactly the audience clauses written down for {written.sum()} of {written.len()}\n"
    sys.stdout.write(table + note)
    if args.out is not None:
        args.out.write_text(table + note, encoding="utf-8")
    if args.per_brief is not None:
        results.write_csv(args.per_brief)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
