"""How often explanations quote a caption, for creators that fit a segment and for creators that do not::

    python -m benchmarks.quotes WORLD [--segments 20] [--per-side 10] [--backend minilm-aligned] [--real-like]

WORLD is a synthetic world (``audiencefit demo-data``) with its truth. For each of the first ``--segments``
segments, the ``--per-side`` creators with the highest true fit (related) and as many drawn at random from those
below the median fit (unrelated) are quoted as the service quotes them (``audiencefit.serving.captions``): as before
issue #19 (exact words in the first 200 characters), with the stem match alone, and with caption vectors of
``--backend``. The table gives, per side, the share of creator-segment pairs with at least one quote and percentiles of
the best caption's cosine to the segment: the basis of ``audiencefit.serving.captions.MIN_SIMILARITY``
(docs/evaluation.md, "Caption quotes").
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import polars as pl

from audiencefit.features.embed import for_queries, get_embedder
from audiencefit.features.text import prepare_text
from audiencefit.serving.captions import CaptionStore, embed_captions, recent_captions

_OLD_STOP = frozenset(
    "the and for with who are you your our their this that from have has into about people love like just "
    "more most them they very what when where which while will than then also been being over under".split()
)
_OLD_WORD = re.compile(r"[^\W\d_]{3,}")


def _old_words(text: str) -> set[str]:
    return {w for w in _OLD_WORD.findall(prepare_text(text).lower()) if w not in _OLD_STOP}


def quoted_before(captions: list[str], segment_text: str) -> bool:
    """Whether the quoting before issue #19 quoted anything: exact words within the first 200 characters."""
    target = _old_words(segment_text)
    return any(target & _old_words(caption[:200]) for caption in captions)


# Openings of real captions: thanks and calls to comment, in the creator's language, before the hashtags.
PREAMBLES = (
    "Otra semana increíble con todos vosotros 🙌🙌🙌 gracias por estar siempre ahí, de verdad que no me lo creo. "
    "Mañana subo más contenido, contadme en comentarios qué os gustaría ver 💬👇",
    "Petit moment de pause avant de repartir ✨ merci pour tous vos messages, ça me touche énormément. "
    "On se retrouve très vite pour la suite, promis 🫶",
    "Noch ein langer Tag, aber es hat sich gelohnt 😅 danke an alle, die heute dabei waren! "
    "Schreibt mir eure Fragen unten in die Kommentare, ich antworte allen 💛",
)


def real_like(posts: pl.DataFrame) -> pl.DataFrame:
    """Captions as real ones run: a ~170-character preamble in Spanish, French or German, line breaks, then the
    synthetic caption (whose topic words and hashtags thus start after the first 170 characters)."""
    preamble = pl.Series([PREAMBLES[i % len(PREAMBLES)] for i in range(posts.height)], dtype=pl.String)
    return posts.with_columns(pl.concat_str([preamble, pl.lit("\n.\n.\n"), pl.col("caption")]).alias("caption"))


def measure(
    world: Path, n_segments: int, per_side: int, backend: str, seed: int = 0, *, real: bool = False
) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    segments = pl.read_parquet(world / "segments.parquet").sort("segment_id").head(n_segments)
    fit = pl.read_parquet(world / "truth" / "fit.parquet")
    pairs: list[tuple[str, str, str, bool]] = []
    for segment_id, text in segments.select("segment_id", "description").rows():
        ranked = fit.filter(pl.col("segment_id") == segment_id).sort("true_fit", descending=True)
        related = ranked.head(per_side)["creator_id"].to_list()
        low = ranked.filter(pl.col("true_fit") < ranked["true_fit"].median())["creator_id"].to_list()
        unrelated = list(rng.choice(low, size=min(per_side, len(low)), replace=False))
        pairs += [(segment_id, text, c, True) for c in related] + [(segment_id, text, c, False) for c in unrelated]
    creators = sorted({c for _, _, c, _ in pairs})
    posts = pl.read_parquet(world / "posts.parquet").filter(pl.col("creator_id").is_in(creators))
    if real:
        posts = real_like(posts)
    captions = recent_captions(posts)
    embedder = get_embedder(backend)
    words_only = CaptionStore(captions)
    with_vectors = CaptionStore(captions, vectors=embed_captions(captions, embedder, None))
    texts = sorted({t for _, t, _, _ in pairs})
    query_vectors = dict(zip(texts, for_queries(embedder).embed(texts), strict=True))
    rows = []
    for _, text, creator_id, is_related in pairs:
        vector = np.asarray(query_vectors[text], dtype=np.float32)
        similarity = with_vectors._similarity(creator_id, vector)
        rows.append(
            {
                "related": is_related,
                "quoted_before": quoted_before(captions.get(creator_id, []), text),
                "quoted_words": bool(words_only.best(creator_id, text)),
                "quoted_vectors": bool(with_vectors.best(creator_id, text, 2, vector)),
                "best_cosine": float(similarity.max()) if similarity is not None and similarity.size else None,
            }
        )
    frame = pl.DataFrame(rows)
    summary = frame.group_by("related").agg(
        pairs=pl.len(),
        quoted_before=pl.col("quoted_before").mean(),
        quoted_words=pl.col("quoted_words").mean(),
        quoted_vectors=pl.col("quoted_vectors").mean(),
        cosine_p10=pl.col("best_cosine").quantile(0.1),
        cosine_p50=pl.col("best_cosine").quantile(0.5),
        cosine_p90=pl.col("best_cosine").quantile(0.9),
    )
    rows = summary.sort("related", descending=True).to_dicts()
    return {"backend": backend, "world": str(world), "real_like": real, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("::")[0] if __doc__ else None)
    parser.add_argument("world", type=Path, help="a synthetic world directory with truth/")
    parser.add_argument("--segments", type=int, default=20, help="segments measured (the first N by id)")
    parser.add_argument("--per-side", type=int, default=10, help="related and unrelated creators per segment")
    parser.add_argument("--backend", default="minilm-aligned", help="embedder backend of the caption vectors")
    parser.add_argument("--real-like", action="store_true", help="prefix every caption as real ones run (real_like)")
    args = parser.parse_args(argv)
    result = measure(args.world, args.segments, args.per_side, args.backend, real=args.real_like)
    print(json.dumps(result, indent=2))  # noqa: T201 (a command's output)


if __name__ == "__main__":
    main()
