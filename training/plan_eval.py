"""Evaluate the campaign planner against the synthetic world's truth.

For every brand of a generated world and several budgets, three plans spend the same budget on the same retrieved
and scored candidates: the planner (``audiencefit.models.planner``), top-k by predicted conversions, and top-k by
followers (each adds creators in its order while the next one still fits the budget). Each plan is scored with the
world's truth (``docs/synthetic-world.md``, "Audience overlap"): true unique in-segment reach and true expected
conversions, both discounted for people in several of the plan's audiences.

A loss counts only when it is larger than a campaign could show (``NOISE_Z`` standard deviations of the difference
of two plans' realised conversions, each a Poisson count; the creators both plans share cancel, see
:func:`loses_beyond_noise`).

    python -m audiencefit.training.plan_eval --world DIR --features DIR --bundle DIR [--budgets 300,1000,3000]
        [--out FILE] [--oracle-noise 0,0.5,1,1.5 [--noise-seeds 8]]

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

from audiencefit.features.featureset import FeatureSet, load_feature_set
from audiencefit.models.bundle import load_bundle
from audiencefit.models.index import default_index_dir
from audiencefit.models.planner import Candidates, Constraints, PlanError, candidates_from_scores, make_plan
from audiencefit.models.retrieval import AudienceSearch
from audiencefit.training.served_eval import DEFAULT_CANDIDATES, audience_search, served_candidates
from audiencefit.training.world_truth import WorldTruth, load_truth, segment_weights, true_conversions, true_plan_value

DEFAULT_BUDGETS = (300.0, 1_000.0, 3_000.0)
METHODS = ("planner", "top-k predicted conversions", "top-k followers")
NOISE_Z = 2.0  # ≈ a two-sided 95 % test


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
    cases = []
    for served in served_candidates(world, truth, fs, search, models, DEFAULT_CANDIDATES):
        cand = candidates_from_scores(fs, served.scored, served.rows, served.query)
        cases.append(
            BrandCase(
                served.brand_id,
                cand,
                true_conversions(truth, served.brand_id, served.segment_ids, cand.creator_ids),
                segment_weights(truth, served.segment_ids),
                served.scored["followers"].fill_null(0).to_numpy(),
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
        from audiencefit.models.index import build_and_save
        from audiencefit.settings import get_settings

        build_and_save(fs, get_settings())
    search = audience_search(fs)
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
