"""audiencefit.training.real_data (YouTube trending exports → contract tables + category truth) and
audiencefit.training.category_eval's pure parts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from audiencefit.features.dataset import validate_dir
from audiencefit.features.errors import InputError
from audiencefit.training.category_briefs import YOUTUBE_BRIEFS
from audiencefit.training.category_eval import CONDITIONS, precision_at, segments_for
from audiencefit.training.real_data import (
    TRUTH_FILE,
    creator_id_of,
    load_youtube_trending,
    main,
    read_truth,
    write_export,
)

HEADER = (
    "video_id,trending_date,title,channel_title,category_id,publish_time,tags,views,likes,dislikes,"
    "comment_count,thumbnail_link,comments_disabled,ratings_disabled,video_error_or_removed,description"
)


def _row(vid: str, day: str, channel: str, cat: str, views: int, desc: str = "watch\\nnow #tag") -> str:
    return (
        f'{vid},{day},"Title {vid}","{channel}",{cat},2017-11-10T17:00:00.000Z,"a"|"b",{views},{views // 10},1,'
        f'{views // 100},http://x,False,False,False,"{desc}"'
    )


def _categories(path: Path, ids: dict[str, str]) -> None:
    items = [{"id": k, "snippet": {"title": v, "assignable": True}} for k, v in ids.items()]
    path.write_text(json.dumps({"kind": "youtube#videoCategoryListResponse", "items": items}), encoding="utf-8")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    rows = [
        _row("v1", "17.14.11", "GameOn", "20", 1000),
        _row("v1", "17.15.11", "GameOn", "20", 5000),  # the same video trending a second day: one post
        _row("v2", "17.15.11", "GameOn", "20", 3000),
        _row("v3", "17.15.11", "GameOn", "10", 2000),
        _row("v4", "17.16.11", "Chef Ana", "26", 700, desc=""),
    ]
    (d / "USvideos.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    _categories(d / "US_category_id.json", {"10": "Music", "20": "Gaming", "26": "Howto & Style", "29": "Nonprofits"})
    fr = [_row("v9", "17.16.11", "Asso", "29", 50), _row("v1", "17.16.11", "GameOn", "20", 9000)]
    (d / "FRvideos.csv").write_text(HEADER + "\n" + "\n".join(fr) + "\n", encoding="utf-8")
    _categories(d / "FR_category_id.json", {"10": "Music", "20": "Gaming", "26": "Howto & Style"})  # no 29, as FR
    return d


def test_videos_become_creators_posts_and_category_truth(src: Path) -> None:
    export = load_youtube_trending(src, ["US", "FR"])
    posts = export.posts.sort("post_id")
    assert posts["post_id"].to_list() == ["v1", "v2", "v3", "v4", "v9"]  # duplicates merged across days and files
    v1 = posts.row(0, named=True)
    assert v1["views"] == 9000 and v1["likes"] == 900 and v1["comments"] == 90  # the highest counts it reached
    assert v1["caption"] == "Title v1\n\nwatch\nnow #tag"  # title + description, line breaks restored
    assert posts.filter(pl.col("post_id") == "v4")["caption"][0] == "Title v4"
    game = creator_id_of("GameOn")
    creators = export.creators
    assert creators.filter(pl.col("creator_id") == game)["followers"][0] == 3000  # median views of 9000, 3000, 2000
    assert creators["bio"].null_count() == creators.height and set(creators["platform"]) == {"youtube"}
    truth = export.truth.filter(pl.col("creator_id") == game).sort("category")
    assert truth["category"].to_list() == ["Gaming", "Music"]
    assert truth["videos"].to_list() == [2, 1] and truth["primary"].to_list() == [True, False]
    assert truth["share"].sum() == pytest.approx(1.0)
    # FR's category list lacks 29; the US list in the same directory names it.
    asso = export.truth.filter(pl.col("creator_id") == creator_id_of("Asso"))
    assert asso["category"].to_list() == ["Nonprofits"]
    assert export.exported_at.isoformat() == "2017-11-17T00:00:00+00:00"


def test_written_export_is_valid_input_and_the_truth_reads_back(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["--src", str(src), "--out", str(out), "--countries", "us", "fr"]) == 0
    report = validate_dir(out)
    assert report.ok, [str(p) for p in report.problems]
    truth = read_truth(out / TRUTH_FILE)
    assert truth.filter(pl.col("primary")).height == 3


def test_bad_input_is_refused_naming_file_row_and_column_and_writes_nothing(src: Path, tmp_path: Path) -> None:
    text = (src / "USvideos.csv").read_text(encoding="utf-8").replace(",5000,", ",lots,")
    (src / "USvideos.csv").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"USvideos.csv, row 2, column 'views': cannot read 'lots'"):
        load_youtube_trending(src, ["US"])
    assert main(["--src", str(src), "--out", str(out), "--countries", "US"]) == 2
    assert not out.exists()


def test_missing_columns_files_and_unknown_categories_are_refused(src: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no DEvideos\.csv or DE_category_id\.json for country DE"):
        load_youtube_trending(src, ["DE"])
    (src / "USvideos.csv").write_text("video_id,title\nv1,t\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"USvideos.csv: missing column\(s\) trending_date, channel_title"):
        load_youtube_trending(src, ["US"])
    (src / "US_category_id.json").unlink()
    _categories(src / "FR_category_id.json", {"20": "Gaming"})
    with pytest.raises(InputError, match="category_id value"):
        load_youtube_trending(src, ["FR"])


def test_a_kept_export_is_only_replaced_by_a_complete_one(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_export(load_youtube_trending(src, ["US"]), out)
    before = sorted(p.name for p in out.iterdir())
    (src / "USvideos.csv").write_text("broken", encoding="utf-8")
    assert main(["--src", str(src), "--out", str(out), "--countries", "US"]) == 2
    assert sorted(p.name for p in out.iterdir()) == before


def test_truth_without_its_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pl.DataFrame({"creator_id": ["a"]}).write_parquet(path)
    with pytest.raises(InputError, match=r"missing column\(s\) category"):
        read_truth(path)


def test_precision_is_out_of_what_the_category_allows() -> None:
    relevant = np.array([True, False, True, False, False])
    order = np.array([0, 1, 2, 3, 4])
    assert precision_at(order, relevant, 2) == pytest.approx(0.5)
    assert precision_at(order, relevant, 3) == pytest.approx(1.0)  # 2 of the 2 possible
    assert precision_at(order[::-1], relevant, 3) == pytest.approx(0.5)
    assert precision_at(order, np.zeros(5, dtype=bool), 3) == 0.0


def test_every_brief_is_sent_three_ways_and_covers_two_languages() -> None:
    brief = YOUTUBE_BRIEFS[0]
    sent = {c: [s.text for s in segments_for(brief, c)] for c in CONDITIONS}
    assert sent == {
        "brief": [brief.brief],
        "audience clause": [brief.audience],
        "brief + audience clause": [brief.audience, brief.brief],
    }
    with pytest.raises(ValueError, match="unknown condition"):
        segments_for(brief, "product")
    by_category: dict[str, set[str]] = {}
    for b in YOUTUBE_BRIEFS:
        by_category.setdefault(b.category, set()).add(b.language)
    assert all(langs == {"en", "fr"} for langs in by_category.values()) and len(by_category) == 11


def test_paired_differences_pair_each_brief_with_the_reference() -> None:
    from audiencefit.training.category_eval import paired_differences

    rows = []
    for backend, values in (("ref", [0.2, 0.4, 0.6]), ("new", [0.3, 0.5, 0.9])):
        for i, v in enumerate(values):
            rows.append(
                {
                    "category": f"c{i}",
                    "language": "en",
                    "condition": "brief",
                    "method": "audience fit (audiencefit)",
                    "ndcg@50": v,
                    "precision@50": v / 2,
                    "backend": backend,
                }
            )
    out = paired_differences(pl.DataFrame(rows), "ref").row(0, named=True)
    assert out["backend"] == "new" and out["briefs"] == 3
    assert out["ndcg@50 − ref"] == pytest.approx((0.1 + 0.1 + 0.3) / 3)
    assert out["ndcg@50 se"] == pytest.approx(np.std([0.1, 0.1, 0.3], ddof=1) / np.sqrt(3))


def test_world_segments_are_sent_as_brief_clause_or_both(tmp_path: Path) -> None:
    from audiencefit.models.query import Segment
    from audiencefit.training.backend_eval import brand_briefs, query_segments

    pl.DataFrame({"segment_id": ["b1-s1"], "brand_id": ["b1"]}).write_parquet(tmp_path / "segments.parquet")
    pl.DataFrame({"brand_id": ["b1"], "description": ["We sell espresso machines."]}).write_parquet(
        tmp_path / "brands.parquet"
    )
    seg = Segment(text="Students who run on cold brew.", weight=2.0, countries=("ES",), segment_id="b1-s1")
    (brief,) = brand_briefs(tmp_path, [seg])
    assert brief == "We sell espresso machines. Students who run on cold brew."
    assert query_segments(seg, brief, "audience clause") == [seg]
    both = query_segments(seg, brief, "brief + audience clause")
    assert [s.text for s in both] == [seg.text, brief] and all(s.countries == ("ES",) for s in both)
    assert [s.weight for s in both] == [1.0, 1.0]
    with pytest.raises(ValueError, match="unknown condition"):
        query_segments(seg, brief, "product")


def test_world_backends_are_paired_by_segment_and_condition() -> None:
    from audiencefit.training.backend_eval import paired_by_segment

    rows = []
    for backend, values in (("ref", [0.5, 0.7]), ("new", [0.4, 0.8])):
        for condition in ("brief", "audience clause"):
            for i, v in enumerate(values):
                shift = 0.0 if condition == "brief" else 0.1
                rows.append(
                    {
                        "backend": backend,
                        "condition": condition,
                        "method": "audience fit (audiencefit)",
                        "segment": f"s{i}",
                        "recall@100": v + shift,
                        "ndcg@50": v,
                    }
                )
    out = paired_by_segment(pl.DataFrame(rows), "ref")
    assert out.height == 2 and set(out["condition"]) == {"brief", "audience clause"}
    first = out.row(0, named=True)
    assert first["backend"] == "new" and first["segments"] == 2
    assert first["ndcg@50 − ref"] == pytest.approx(0.0)
    assert first["ndcg@50 se"] == pytest.approx(np.std([-0.1, 0.1], ddof=1) / np.sqrt(2))
    assert first["recall@100 − ref"] == pytest.approx(0.0)
