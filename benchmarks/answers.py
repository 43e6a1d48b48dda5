"""The service's answers to the service benchmark's briefs, one per line, to check that a change answers alike::

    PYTHONPATH=<checkout> python benchmarks/answers.py --work DIR --out FILE [--n 300] [--embedder ID]

(run as a file, so that a checkout without it answers with its own code: ``audiencefit`` and ``benchmarks.service``
are imported from ``PYTHONPATH``).
``DIR`` is a world of ``benchmarks.service`` (its ``features/`` and ``bundle/``; read, never written). The briefs
are the benchmark's (``benchmarks.service.make_brief``, seed 3): ``n`` novel briefs to warm up and ``n`` more
novel ones, then ``n`` repeat briefs answered twice (the second time from what the first left in the caches).
Each line is ``mode, phase, index, recommendation_json`` (tab-separated) with the ``recommendation_id`` (a fresh
uuid4) blanked, so that two checkouts' files compare with ``cmp``. The recommendation log is off.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import re
import sys
from pathlib import Path

_ID_RE = re.compile(r'"recommendation_id":"[0-9a-f]{32}"')
_BLANK_ID = '"recommendation_id":"-"'


def blank_id(body: str) -> str:
    """``body`` with its one recommendation_id blanked; ValueError when it has not exactly one."""
    out, found = _ID_RE.subn(_BLANK_ID, body)
    if found != 1:
        raise ValueError(f"a response should carry one recommendation_id, this one has {found}: {body[:200]}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("::")[0] if __doc__ else None)
    parser.add_argument("--work", type=Path, required=True, help="a benchmarks.service world (features/, bundle/)")
    parser.add_argument("--out", type=Path, required=True, help="where the answers are written")
    parser.add_argument("--n", type=int, default=300, help="briefs per phase (default 300)")
    parser.add_argument("--embedder", default=None, help="AUDIENCEFIT_EMBEDDER the world was built with")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    for part in ("features", "bundle"):
        if not (args.work / part).is_dir():
            parser.error(f"--work {args.work}: no {part}/ directory (not a benchmarks.service world)")
    if args.embedder:
        os.environ["AUDIENCEFIT_EMBEDDER"] = args.embedder

    from audiencefit.serving.app import ServeConfig, load_state
    from audiencefit.serving.routes.recommend import recommendation_json
    from audiencefit.serving.schemas import RecommendationRequest
    from audiencefit.settings import get_settings
    from benchmarks.service import Novel, make_brief

    config = ServeConfig(features_dir=args.work / "features", bundle_source=args.work / "bundle")
    loaded = load_state(get_settings(), config).state
    if loaded is None or loaded.model is None:
        parser.error(f"--work {args.work}: nothing to answer with (no state or no model loaded from bundle/)")
    model, state = loaded.model, dataclasses.replace(loaded, reclog=None)

    def brief_of(rnd: random.Random, novel: Novel | None) -> RecommendationRequest:
        return RecommendationRequest.model_validate(make_brief(rnd, novel))

    lines = 0
    with args.out.open("w", encoding="utf-8") as out:
        for mode in ("novel", "repeat"):
            rnd = random.Random(3)
            novel = Novel() if mode == "novel" else None
            briefs = [brief_of(rnd, novel) for _ in range(args.n)]
            # Novel: other novel briefs first (as the in-process measurement warms up); repeat: the same ones twice.
            warm = [brief_of(rnd, novel) for _ in range(args.n)] if novel else briefs
            for phase, batch in (("first", warm), ("second", briefs)):
                for i, brief in enumerate(batch):
                    out.write(f"{mode}\t{phase}\t{i}\t{blank_id(recommendation_json(state, model, brief))}\n")
                    lines += 1
    import audiencefit

    code = Path(audiencefit.__file__).resolve().parent.parent
    print(f"{lines} answers written to {args.out} by the code in {code}", file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    main()
