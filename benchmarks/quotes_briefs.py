"""How often the creators recommended for a brief get a caption quote, on any feature set (real exports too)::

    python -m benchmarks.quotes_briefs --features DIR [--k 20]

Each brief of ``audiencefit.training.category_briefs`` (22 marketer briefs, English and French) is read by the brief
reader, the service's search ranks the creators (no follower filter: exports may carry proxies), and each of the top
``k`` is asked for quotes the way ``audiencefit.serving.explain`` asks: the feature set's recent captions
(``recent_captions.parquet``), their vectors from the creators' embedder, and every derived segment's text and
vector. Prints the share of recommended creators with at least one quote, overall and per brief language.
The feature set needs its index (``audiencefit index build``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from audiencefit.features.featureset import load_feature_set
from audiencefit.models.brief import read_brief
from audiencefit.models.query import Filters, Segment
from audiencefit.serving.captions import CaptionStore
from audiencefit.training.category_briefs import YOUTUBE_BRIEFS
from audiencefit.training.served_eval import audience_search

MAX_QUOTES = 2  # what an explanation shows per segment


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("::")[0] if __doc__ else None)
    parser.add_argument("--features", type=Path, required=True, help="a feature set with its index")
    parser.add_argument("--k", type=int, default=20, help="recommended creators per brief (default 20)")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error(f"--k must be at least 1, got {args.k}")
    fs = load_feature_set(args.features)
    search = audience_search(fs)
    store = CaptionStore.from_feature_set(fs, search.embedder, None)
    if store is None:
        parser.error(f"--features {args.features}: no recent_captions.parquet (built before features kept captions)")
    shown: Counter[str] = Counter()
    quoted: Counter[str] = Counter()
    everything = Filters(min_followers=0, max_followers=10**12)
    for brief in YOUTUBE_BRIEFS:
        reading = read_brief(brief.brief)
        segments = [Segment(text=s.text, weight=s.weight, segment_id=s.id) for s in reading.segments]
        found = search.search(segments, everything, k=args.k)
        vectors = found.segment_vectors
        for creator_id in found.creator_ids:
            shown[brief.language] += 1
            if any(store.best(creator_id, s.text, MAX_QUOTES, vectors[i]) for i, s in enumerate(segments)):
                quoted[brief.language] += 1
    total, hits = sum(shown.values()), sum(quoted.values())
    lines = [f"briefs {len(YOUTUBE_BRIEFS)}, recommended creators {total}, quoted {hits} ({hits / total:.1%})"]
    lines += [f"  {lang}: {quoted[lang]} of {shown[lang]} ({quoted[lang] / shown[lang]:.1%})" for lang in sorted(shown)]
    print("\n".join(lines))  # noqa: T201 (a command's output)


if __name__ == "__main__":
    main()
