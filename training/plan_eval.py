"""Evaluate the campaign planner against the synthetic world's truth.

For every brand of a generated world and several budgets, three plans spend the same budget on the same retrieved
and scored candidates: the planner (``models.planner``), top-k by predicted conversions, and top-k by followers
(each adds creators in its order while the next one still fits the budget). Each plan is scored with the world's
truth (``docs/synthetic-world.md``, "Audience overlap"): true unique in-segment reach and true expected
conversions, both discounted for people in several of the plan's audiences.

A loss counts only when it is larger than a campaign could show (``NOISE_Z`` standard deviations of the difference
of two plans' realised conversions, each a Poisson count; the creators both plans share cancel, see
:func:`loses_beyond_noise`).

    python -m training.plan_eval --world DIR --features DIR --bundle DIR [--budgets 300,1000,3000] [--out FILE]
        [--oracle-noise 0,0.5,1,1.5 [--noise-seeds 8]]

``--oracle-noise`` measures the floor of that count: the same plans made from the true conversions times
log-normal noise of a given σ instead of the model's predictions, beside the model's own σ on the candidates.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from features.featureset import FeatureSet, load_feature_set
from features.synthetic.locale import COUNTRY_CODES
from features.synthetic.story import PLATFORM_CTR, PLATFORM_REACH, PLATFORMS, community_audience
from models.bundle import load_bundle
from models.index import default_index_dir, load_index
from models.pair_features import BrandQuery
from models.planner import Candidates, Constraints, PlanError, candidates_from_scores, make_plan
from models.query import Filters, Segment, embed_segments, query_embedder
from models.retrieval import AudienceSearch
from models.scoring import score_creators

DEFAULT_BUDGETS = (300.0, 1_000.0, 3_000.0)
METHODS = ("planner", "top-k predicted conversions", "top-k followers")
NOISE_Z = 2.0  # ≈ a two-sided 95 % test


@dataclass(frozen=True)
class WorldTruth:
    """What evaluation needs from ``truth/``: each creator's audience per community, pools, true conversions."""

    creator_row: dict[str, int]
    audience: np.ndarray  # (n, C) true real audience per community
    pool: np.ndarray  # (C,)
    community_topic: np.ndarray  # (C,)
    community_country: list[str]
    real: np.ndarray
    platform: np.ndarray
    fit: pl.DataFrame  # segment_id, creator_id, true_fit
    segments: pl.DataFrame  # segment_id, brand_id, topic_mix, countries
    conversion_factor: dict[str, float]


def load_truth(world: Path) -> WorldTruth:
    tc = pl.read_parquet(world / "truth" / "creators.parquet")
    com = pl.read_parquet(world / "truth" / "communities.parquet").sort("community")
    country_index = {c: i for i, c in enumerate(COUNTRY_CODES)}
    audience = community_audience(
        tc["real_followers"].to_numpy(),
        np.asarray(tc["audience_topics"].to_list(), dtype=np.float64),
        np.array([country_index[c] for c in tc["country"].to_list()], dtype=np.int64),
        tc["home_share"].to_numpy(),
    ).reshape(tc.height, -1)
    creators = pl.read_parquet(world / "creators.parquet").select("creator_id", "platform")
    platform = creators.join(tc.select("creator_id"), on="creator_id", how="right")["platform"].to_list()
    segs = pl.read_parquet(world / "truth" / "segments.parquet").join(
        pl.read_parquet(world / "segments.parquet").select("segment_id", "countries", "description", "weight"),
        on="segment_id",
    )
    brands = pl.read_parquet(world / "truth" / "brands.parquet")
    return WorldTruth(
        creator_row={c: i for i, c in enumerate(tc["creator_id"].to_list())},
        audience=audience,
        pool=com["pool_size"].to_numpy().astype(np.float64),
        community_topic=com["topic_id"].to_numpy(),
        community_country=com["country"].to_list(),
        real=tc["real_followers"].to_numpy(),
        platform=np.array([PLATFORMS.index(p) for p in platform], dtype=np.int64),
        fit=pl.read_parquet(world / "truth" / "fit.parquet"),
        segments=segs,
        conversion_factor=dict(zip(brands["brand_id"].to_list(), brands["conversion_factor"].to_list(), strict=True)),
    )


def segment_weights(truth: WorldTruth, segment_ids: list[str]) -> np.ndarray:
    """(C,) 1 for communities inside any of the segments (one of its topics, in its target countries), else 0."""
    out = np.zeros(len(truth.pool))
    for rec in truth.segments.filter(pl.col("segment_id").is_in(segment_ids)).iter_rows(named=True):
        topics = {t for t, w in enumerate(rec["topic_mix"]) if w > 0}
        targets = set((rec["countries"] or "").split())
        inside = np.array(
            [
                t in topics and (not targets or g in targets)
                for t, g in zip(truth.community_topic.tolist(), truth.community_country, strict=True)
            ]
        )
        out = np.maximum(out, inside.astype(np.float64))
    return out


def true_conversions(truth: WorldTruth, brand_id: str, segment_ids: list[str], creator_ids: list[str]) -> np.ndarray:
    """Each creator's expected conversions for the brand alone (the world's campaign formula at the export, for the
    brand's best segment)."""
    fit = (
        truth.fit.filter(pl.col("segment_id").is_in(segment_ids) & pl.col("creator_id").is_in(creator_ids))
        .group_by("creator_id")
        .agg(pl.col("true_fit").max())
    )
    best = dict(zip(fit["creator_id"].to_list(), fit["true_fit"].cast(pl.Float64).to_list(), strict=True))
    rows = np.array([truth.creator_row[c] for c in creator_ids], dtype=np.int64)
    f = np.array([best.get(c, 0.0) for c in creator_ids])
    real, platform = truth.real[rows], truth.platform[rows]
    reach = real * np.clip(0.3 * (np.maximum(real, 1.0) / 5000.0) ** -0.12 * PLATFORM_REACH[platform], 0.03, 0.85)
    ctr = 0.012 * PLATFORM_CTR[platform] * (0.08 + 2.6 * f)
    cvr = np.clip(0.06 * truth.conversion_factor[brand_id] * (0.2 + 2.4 * f), 0.0, 0.5)
    out: np.ndarray = reach * ctr * cvr
    return out


def true_plan_value(
    truth: WorldTruth, creator_ids: list[str], conversions: np.ndarray, weights: np.ndarray
) -> tuple[float, float]:
    """(true unique in-segment reach, true expected conversions) of a plan: people in several audiences count once
    and buy at most once, from the most persuasive creator reaching them."""
    if not creator_ids:
        return 0.0, 0.0
    rows = np.array([truth.creator_row[c] for c in creator_ids], dtype=np.int64)
    share = np.clip(truth.audience[rows] / truth.pool[None, :], 0.0, 1.0)
    reach = float(weights @ (truth.pool * (1.0 - np.prod(1.0 - share, axis=0))))
    rho = conversions / np.maximum(truth.real[rows], 1e-9)
    missed = np.ones(len(truth.pool))
    total = 0.0
    for i in np.argsort(-rho, kind="stable"):
        total += rho[i] * float((share[i] * missed) @ truth.pool)
        missed *= 1.0 - share[i]
    return reach, total


def fill_in_order(c: Candidates, order: np.ndarray, budget: float) -> list[int]:
    """Baseline plans: take creators in ``order`` while the next one still fits the budget."""
    chosen, spent = [], 0.0
    for i in order.tolist():
        if spent + c.price[i] <= budget:
            chosen.append(i)
            spent += float(c.price[i])
    return chosen


@dataclass(frozen=True)
class BrandCase:
    """One brand's retrieved and scored candidates with what evaluation needs from the truth."""

    brand_id: str
    candidates: Candidates
    true_conversions: np.ndarray  # each candidate's true expected conversions for the brand alone
    weights: np.ndarray  # (C,) communities inside the brand's segments
    followers: np.ndarray


def brand_cases(
    world: Path, fs: FeatureSet, search: AudienceSearch, bundle_dir: Path
) -> tuple[WorldTruth, list[BrandCase]]:
    """The world's truth and, for every brand, the candidates the service would plan from."""
    truth = load_truth(world)
    models = load_bundle(bundle_dir).models
    brands = {r["brand_id"]: r for r in pl.read_parquet(world / "brands.parquet").iter_rows(named=True)}
    cases = []
    for brand_id, segs in truth.segments.sort("segment_id").group_by("brand_id", maintain_order=True):
        brand = str(brand_id[0])
        segments = [
            Segment(
                text=r["description"],
                weight=r["weight"],
                countries=tuple((r["countries"] or "").split()),
                segment_id=r["segment_id"],
            )
            for r in segs.iter_rows(named=True)
        ]
        found = search.search(segments, Filters(), 300)
        if found.empty_reason:
            continue
        # The brand asks as it would through the API: its description and its handles and hashtags too.
        info = brands.get(brand, {})
        description = (info.get("description") or "").strip()
        brand_vector = embed_segments([Segment(text=description)], search.embedder)[0] if description else None
        terms = tuple(
            t.lower().lstrip("@#") for field in ("handles", "hashtags") for t in (info.get(field) or "").split()
        )
        query = BrandQuery(
            found.segments,
            found.segment_vectors,
            brand_vector=brand_vector if brand_vector is not None and brand_vector.any() else None,
            brand_terms=terms,
        )
        scored = score_creators(fs, models, query, found.rows)
        cand = candidates_from_scores(fs, scored, found.rows, query)
        seg_ids = [s.segment_id or "" for s in segments]
        cases.append(
            BrandCase(
                brand,
                cand,
                true_conversions(truth, brand, seg_ids, cand.creator_ids),
                segment_weights(truth, seg_ids),
                scored["followers"].fill_null(0).to_numpy(),
            )
        )
    return truth, cases


def compare_plans(
    truth: WorldTruth,
    cases: list[BrandCase],
    budgets: tuple[float, ...],
    predicted: list[np.ndarray] | None = None,
) -> pl.DataFrame:
    """One row per (brand, budget, method) with true reach and conversions and the plan's cost.

    ``predicted`` (one array per case) replaces the model's conversions for the planner and for top-k by predicted
    conversions alike (``--oracle-noise``); prices, audiences and the truth the plans are judged by stay the same.
    """
    rows_out = []
    for n, case in enumerate(cases):
        cand = case.candidates if predicted is None else replace(case.candidates, conversions=predicted[n])
        conv_true = case.true_conversions
        for budget in budgets:
            try:
                plan = make_plan(cand, Constraints(budget=budget))
            except PlanError:
                continue
            index = {cid: i for i, cid in enumerate(cand.creator_ids)}
            plans = {
                "planner": [index[p.creator_id] for p in plan.creators],
                "top-k predicted conversions": fill_in_order(
                    cand, np.lexsort((np.arange(len(cand)), -cand.conversions)), budget
                ),
                "top-k followers": fill_in_order(cand, np.lexsort((np.arange(len(cand)), -case.followers)), budget),
            }
            ours = set(plans["planner"])
            for method, chosen in plans.items():
                ids = [cand.creator_ids[i] for i in chosen]
                reach, conv = true_plan_value(truth, ids, conv_true[chosen], case.weights)
                both = sorted(ours.intersection(chosen))
                shared = true_plan_value(truth, [cand.creator_ids[i] for i in both], conv_true[both], case.weights)[1]
                rows_out.append(
                    {
                        "brand_id": case.brand_id,
                        "budget": budget,
                        "method": method,
                        "creators": len(ids),
                        "cost": float(cand.price[chosen].sum()),
                        "true_reach": reach,
                        "true_conversions": conv,
                        "shared_conversions": shared,
                    }
                )
    return pl.DataFrame(rows_out)


def model_error(cases: list[BrandCase]) -> float:
    """Standard deviation of log(predicted / true conversions) on the candidates, each brand's median removed (a
    per-brand scale changes no plan)."""
    logs = []
    for case in cases:
        ratio = np.log(np.maximum(case.candidates.conversions, 1e-9) / np.maximum(case.true_conversions, 1e-9))
        logs.append(ratio - np.median(ratio))
    return float(np.std(np.concatenate(logs))) if logs else float("nan")


def oracle_noise(
    truth: WorldTruth, cases: list[BrandCase], budgets: tuple[float, ...], sigmas: tuple[float, ...], seeds: int
) -> pl.DataFrame:
    """The floor of the loss count: plans made from the true conversions × exp(σ·z), z standard normal per
    candidate, instead of the model's predictions. One row per (σ, noise seed): losses beyond noise and the
    planner's mean true conversions per budget. A model whose error is σ cannot be expected to lose less often."""
    rows = []
    for sigma in sigmas:
        for seed in range(seeds):
            rng = np.random.default_rng(1_000 + seed)
            predicted = [c.true_conversions * np.exp(sigma * rng.standard_normal(len(c.candidates))) for c in cases]
            results = compare_plans(truth, cases, budgets, predicted)
            planner = summarise(results).filter(pl.col("method") == "planner").sort("budget")
            rows.append(
                {"sigma": sigma, "noise_seed": seed, "losses": losses(results).height}
                | {
                    f"planner_conversions_{b:g}": v
                    for b, v in zip(planner["budget"], planner["true_conversions"], strict=True)
                }
            )
    return pl.DataFrame(rows)


def loses_beyond_noise(planner: pl.Expr, other: pl.Expr, shared: pl.Expr, z: float = NOISE_Z) -> pl.Expr:
    """Does the planner's plan lose to the other plan by more than a campaign could show?

    Realised conversions are counts around the true expectations a (planner) and b (other); as Poisson counts,
    the creators both plans share (expected conversions c together) bring the same people and purchases to both,
    so the difference has variance (a − c) + (b − c). The planner loses beyond noise when b − a > z·√(a + b − 2c).
    Poisson is the smallest spread a count can have (real campaigns are overdispersed), so this is the strictest
    honest bar.
    """
    spread = (planner + other - 2.0 * shared).clip(lower_bound=0.0).sqrt()
    return (other - planner) > z * spread


def summarise(results: pl.DataFrame) -> pl.DataFrame:
    """Per budget and method: mean true reach and conversions, the planner's win rate / worst relative loss, and
    how many of its losses are larger than noise (:func:`loses_beyond_noise`)."""
    planner = results.filter(pl.col("method") == "planner").select(
        "brand_id", "budget", pl.col("true_reach").alias("p_reach"), pl.col("true_conversions").alias("p_conv")
    )
    joined = results.join(planner, on=["brand_id", "budget"])
    return (
        joined.group_by("budget", "method")
        .agg(
            brands=pl.len(),
            creators=pl.col("creators").mean(),
            cost=pl.col("cost").mean(),
            true_reach=pl.col("true_reach").mean(),
            true_conversions=pl.col("true_conversions").mean(),
            planner_wins_conv=(pl.col("p_conv") >= pl.col("true_conversions") - 1e-9).mean(),
            planner_worst_conv_ratio=(pl.col("p_conv") / pl.col("true_conversions").clip(1e-9)).min(),
            planner_wins_reach=(pl.col("p_reach") >= pl.col("true_reach") - 1e-9).mean(),
            planner_losses_beyond_noise=loses_beyond_noise(
                pl.col("p_conv"), pl.col("true_conversions"), pl.col("shared_conversions")
            ).sum(),
        )
        .sort("budget", "method")
    )


def losses(results: pl.DataFrame) -> pl.DataFrame:
    """The (brand, budget, method) rows where the planner loses by more than noise, worst ratio first."""
    planner = results.filter(pl.col("method") == "planner").select(
        "brand_id", "budget", pl.col("true_conversions").alias("planner_conversions")
    )
    return (
        results.join(planner, on=["brand_id", "budget"])
        .filter(
            loses_beyond_noise(pl.col("planner_conversions"), pl.col("true_conversions"), pl.col("shared_conversions"))
        )
        .select(
            "brand_id",
            "budget",
            "method",
            "planner_conversions",
            "true_conversions",
            ratio=pl.col("planner_conversions") / pl.col("true_conversions"),
        )
        .sort("ratio")
    )


def to_markdown(table: pl.DataFrame) -> str:
    cols = table.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table.iter_rows():
        cells = [
            f"{v:,.3g}" if isinstance(v, float) and abs(v) < 10 else f"{v:,.0f}" if isinstance(v, float) else str(v)
            for v in row
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--budgets", default=",".join(str(b) for b in DEFAULT_BUDGETS))
    parser.add_argument("--out", type=Path, default=None, help="Write the per-plan rows as parquet.")
    parser.add_argument(
        "--oracle-noise",
        default="",
        help="Also plan from the true conversions × exp(σ·z) for these comma-separated σ (e.g. 0,0.5,1,1.5): "
        "how many losses beyond noise any model with that error has; the model's own σ is printed beside.",
    )
    parser.add_argument("--noise-seeds", type=int, default=8, help="Noise draws per σ of --oracle-noise.")
    args = parser.parse_args(argv)
    budgets = tuple(float(b) for b in args.budgets.split(","))
    sigmas = tuple(float(x) for x in args.oracle_noise.split(",") if x.strip())
    if any(x < 0 for x in sigmas) or args.noise_seeds < 1:
        parser.error("--oracle-noise takes σ ≥ 0 and --noise-seeds at least 1")
    fs = load_feature_set(args.features)
    index_dir = default_index_dir(fs)
    if not index_dir.is_dir():
        from audiencefit.settings import get_settings
        from models.index import build_and_save

        build_and_save(fs, get_settings())
    search = AudienceSearch(
        fs, load_index(fs, "audience", index_dir), load_index(fs, "content", index_dir), query_embedder(fs)
    )
    truth, cases = brand_cases(args.world, fs, search, args.bundle)
    results = compare_plans(truth, cases, budgets)
    if args.out is not None:
        results.write_parquet(args.out)
    sys.stdout.write(to_markdown(summarise(results)))
    lost = losses(results)
    sys.stdout.write(f"\nplanner losses beyond noise: {lost.height}\n")
    if lost.height:
        sys.stdout.write("\n" + to_markdown(lost))
    if sigmas:
        floor = oracle_noise(truth, cases, budgets, sigmas, args.noise_seeds)
        table = floor.group_by("sigma", maintain_order=True).agg(
            pl.col("losses").mean().alias("mean_losses"),
            pl.col("losses").min().alias("min"),
            pl.col("losses").max().alias("max"),
            *[pl.col(c).mean() for c in floor.columns if c.startswith("planner_conversions_")],
        )
        sys.stdout.write(
            f"\nplans from the true conversions × exp(σ·z), {args.noise_seeds} draws per σ; the model's σ on these "
            f"candidates (each brand's median removed): {model_error(cases):.2f}, its losses: {lost.height}\n\n"
        )
        sys.stdout.write(to_markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
