"""Measure the forecast-reliability check (``audiencefit.models.drift``) between a training feature set and served ones.

    python -m audiencefit.training.reliability_eval --train FEATURES [--served FEATURES ...] [--bundle BUNDLE] [--top 8]

The training side is the summary ``audiencefit train`` stores for ``--train`` (computed here the same way), or the
summary stored in ``--bundle``. For every served feature set it prints the level the service would report, how many
inputs shifted, the largest PSI, the creators outside the training range, and the inputs with the largest PSI. The
figures in docs/evaluation.md ("When not to trust a forecast") come from this command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import load_feature_set
from audiencefit.models.bundle import load_bundle
from audiencefit.models.drift import check_features, summarize_features, summary_frame


def report(summary: object, served: Path, top: int) -> str:
    """One served feature set's check, as markdown lines."""
    fs = load_feature_set(served, verify_checksums=False)
    reliability = check_features(summary, fs)
    table = summary_frame(reliability)
    lines = [
        f"### {served}",
        "",
        f"level **{reliability.level}**; {len(reliability.shifted)} of {len(reliability.inputs)} inputs shifted; "
        f"creators out of the training range: {len(reliability.out_of_range_rows())} of {fs.creators.height}",
        "",
        "| input | PSI | threshold | shifted | served | training |",
        "|---|---:|---:|---|---|---|",
    ]
    for row in table.head(top).iter_rows(named=True):
        lines.append(
            f"| {row['feature']} | {row['psi']:.3f} | {row['threshold']:.3f} | {'yes' if row['shifted'] else 'no'} "
            f"| {row['served']} | {row['training']} |"
        )
    if reliability.reasons:
        lines += ["", "reasons:", *[f"- {r}" for r in reliability.reasons]]
    return "\n".join(lines) + "\n\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--train", type=Path, help="The feature set the model was (or would be) trained with.")
    parser.add_argument("--bundle", type=Path, help="Use the summary stored in this bundle instead of --train.")
    parser.add_argument("--served", type=Path, nargs="+", required=True, help="Feature sets to check.")
    parser.add_argument("--top", type=int, default=8, help="Inputs shown per served set (largest PSI first).")
    args = parser.parse_args(argv)
    if (args.train is None) == (args.bundle is None):
        parser.error("give exactly one of --train or --bundle")
    if args.top < 1:
        parser.error("--top must be at least 1")
    try:
        if args.bundle is not None:
            summary = load_bundle(args.bundle).feature_summary
            source = f"the summary stored in bundle {args.bundle}"
        else:
            summary = summarize_features(load_feature_set(args.train, verify_checksums=False))
            source = f"training feature set {args.train}"
        sys.stdout.write(f"training side: {source}\n\n")
        for served in args.served:
            sys.stdout.write(report(summary, served, args.top))
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
