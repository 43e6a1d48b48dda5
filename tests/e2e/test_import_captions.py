"""A real-like Instagram export, end to end: ``audiencefit import`` → ``features build`` → the service with the
imported data quotes captions in explanations (issue #19: on a real sample the quote list came back empty).

The export is written from the small synthetic world the way real exports arrive
(``audiencefit.features.synthetic.export_like``: creators and posts only, half the bios missing, noisy counts), as
Instagram post JSON, with captions the way real ones are: hundreds of characters, in other languages first, the English
words only in the hashtag block at the end, line breaks and emoji runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from audiencefit.features.text import prepare_text
from tests.conftest import HashingEmbedder
from tests.e2e.conftest import make_client

PREAMBLES = [
    "Otra semana increíble con todos vosotros 🙌🙌🙌 gracias por estar siempre ahí, de verdad que no me lo creo. "
    "Mañana subo más contenido, contadme en comentarios qué os gustaría ver 💬👇",
    "Petit moment de pause avant de repartir ✨ merci pour tous vos messages, ça me touche énormément. "
    "On se retrouve très vite pour la suite, promis 🫶",
    "Noch ein langer Tag, aber es hat sich gelohnt 😅 danke an alle, die heute dabei waren! "
    "Schreibt mir eure Fragen unten in die Kommentare, ich antworte allen 💛",
]


def real_like_caption(caption: str | None, i: int) -> str | None:
    """A synthetic caption rewritten as a real one: a long preamble in another language, then the hashtags only."""
    if caption is None:
        return None
    tags = " ".join(w for w in caption.split() if w.startswith("#"))
    return f"{PREAMBLES[i % len(PREAMBLES)]}\n.\n.\n.\n{tags} #explore #reels #fyp"


def instagram_objects(world: Path) -> list[dict]:
    creators = pl.read_parquet(world / "creators.parquet")
    posts = pl.read_parquet(world / "posts.parquet")
    owners = {
        r["creator_id"]: {"id": r["creator_id"], "username": r["handle"], "edge_followed_by": {"count": r["followers"]}}
        for r in creators.iter_rows(named=True)
    }
    objects = []
    for i, r in enumerate(posts.iter_rows(named=True)):
        caption = real_like_caption(r["caption"], i)
        objects.append(
            {
                "id": r["post_id"],
                "shortcode": f"C{i}",
                "taken_at_timestamp": int(r["posted_at"].timestamp()),
                "edge_media_to_caption": {"edges": [{"node": {"text": caption}}] if caption else []},
                "edge_media_preview_like": {"count": r["likes"]},
                "edge_media_to_comment": {"count": r["comments"]},
                "owner": owners[r["creator_id"]],
            }
        )
    return objects + objects[:25]  # a re-scraped first page: duplicates to merge


@pytest.fixture(scope="module")
def imported(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the imported data directory, its feature set with indexes)."""
    from audiencefit.cli._app import app
    from audiencefit.features.build import build_feature_set
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.features.synthetic.export_like import write_export_like
    from audiencefit.models.index import build_and_save
    from audiencefit.settings import Settings

    root = tmp_path_factory.mktemp("real-like")
    export_like = write_export_like(small_world, root / "export-like")
    src = root / "instagram"
    src.mkdir()
    objects = instagram_objects(export_like)
    half = len(objects) // 2
    (src / "page-1.json").write_text(json.dumps(objects[:half], ensure_ascii=False, indent=1), encoding="utf-8")
    (src / "page-2.jsonl").write_text("\n".join(json.dumps(o, ensure_ascii=False) for o in objects[half:]), "utf-8")
    exported_at = json.loads((small_world / "export.json").read_text())["exported_at"]
    data = root / "data"
    result = CliRunner().invoke(
        app, ["import", "--from", "instagram", str(src), "--out", str(data), "--export-time", exported_at]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "duplicate posts merged: 25" in result.output
    features = root / "features"
    settings = Settings(data_dir=root / "settings")
    build_feature_set(data, features, settings=settings, embedder=HashingEmbedder())
    build_and_save(load_feature_set(features), settings)
    return data, features


@pytest.fixture(scope="module", params=["with --data", "feature set only"])
def real_like_client(request, api_settings, imported: tuple[Path, Path], bundles) -> Iterator[TestClient]:
    """The service on the imported feature set: given the raw data, and without it (the captions the feature set
    keeps are quoted then)."""
    data, features = imported
    yield from make_client(api_settings, features, bundles[0], data=data if request.param == "with --data" else None)


def test_the_import_has_real_like_captions(imported: tuple[Path, Path]) -> None:
    data, features = imported
    posts = pl.read_parquet(data / "posts.parquet")
    creators = pl.read_parquet(data / "creators.parquet")
    assert posts["caption"].str.len_chars().mean() > 200  # type: ignore[operator]
    assert creators["bio"].null_count() > 0 and not (data / "followers.parquet").exists()
    kept = pl.read_parquet(features / "recent_captions.parquet")
    assert kept.group_by("creator_id").len()["len"].max() == 8
    assert kept["caption"].str.len_chars().max() > 200  # whole captions, not their first 200 characters


def test_explanations_quote_captions_related_to_the_segment_on_a_real_like_export(
    real_like_client: TestClient, imported: tuple[Path, Path]
) -> None:
    data, features = imported
    posts = pl.read_parquet(data / "posts.parquet")
    known = set(pl.read_parquet(features / "creators.parquet")["creator_id"].to_list())
    # Creators whose newest captions carry a hashtag that is one English word, and a segment naming that word in
    # the plural (the match must survive the foreign preamble, the 200-character cut and the inflection).
    newest = (
        posts.filter(pl.col("creator_id").is_in(list(known)) & pl.col("caption").is_not_null())
        .sort(["creator_id", "posted_at"], descending=[False, True])
        .group_by("creator_id", maintain_order=True)
        .head(3)
        .with_columns(tag=pl.col("caption").str.extract(r"#([a-z]{5,12})\b", 1))
        .filter(pl.col("tag").is_not_null() & ~pl.col("tag").is_in(["explore", "reels"]))
        .unique("creator_id", keep="first", maintain_order=True)
        .head(8)
    )
    assert newest.height >= 5
    for creator_id, tag in newest.select("creator_id", "tag").rows():
        words = prepare_text(f"#{tag}")  # as a marketer writes it: "urban gardens", not "#urbangarden"
        segment = f"fans of {words}" if words.endswith("s") else f"fans of {words}s"  # inflected where it can be
        resp = real_like_client.post("/v1/score", json={"segments": [{"text": segment}], "creator_ids": [creator_id]})
        assert resp.status_code == 200, resp.text
        explanation = resp.json()["creators"][0]["explanation"]
        assert explanation["captions"], (creator_id, tag, explanation)
        assert any(f"#{tag}" in quote.lower() for quote in explanation["captions"]), (tag, explanation["captions"])
        assert all(len(quote) <= 202 for quote in explanation["captions"])
        assert any(r.startswith("Recent captions") for r in explanation["reasons"])
