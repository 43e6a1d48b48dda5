"""audiencefit.training.brief_eval on a tiny set of briefs over the small world (hashing embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from audiencefit.features.errors import InputError
from audiencefit.features.featureset import load_feature_set
from audiencefit.models.query import query_embedder
from audiencefit.training import brief_eval
from audiencefit.training.brief_eval import (
    METHOD_CLAUSES,
    METHOD_SEGMENT,
    METHOD_WHOLE,
    evaluate_briefs,
    load_briefs,
    read_truth,
    summarize,
    world_truth,
)

BRIEFS = [
    {
        "id": "t1",
        "style": "one-liner",
        "order": "product-first",
        "language": "en",
        "product_topic": "baking",
        "audience": ["gaming"],
        "text": "Sourdough bread and cake bakery that wants to reach gamers who stream video games at night",
        "segment": "gamers streaming video games",
        "audience_clauses": ["gamers who stream video games at night"],
    },
    {
        "id": "t2",
        "style": "bullets",
        "order": "product-first",
        "language": "en",
        "product_topic": "coffee",
        "audience": ["running"],
        "text": "Product: espresso beans\nTarget: runners training for a marathon",
        "segment": "marathon runners",
    },
    {
        "id": "t3",
        "style": "one-liner",
        "order": "product-only",
        "language": "en",
        "product_topic": "pets",
        "audience": ["pets"],
        "text": "Fresh dog food and puppy treats.",
        "segment": "dog owners",
    },
]


def write_briefs(path: Path, briefs: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(b) + "\n" for b in briefs), encoding="utf-8")
    return path


def test_the_packaged_briefs_are_valid_and_varied() -> None:
    briefs = load_briefs()
    assert len(briefs) >= 60
    assert {b.language for b in briefs} >= {"en", "es", "de", "fr", "pt", "it"}
    assert {b.style for b in briefs} >= {"one-liner", "paragraph", "bullets"}
    assert {b.order for b in briefs} >= {"product-first", "audience-first"}
    assert sum(b.mismatched for b in briefs) >= 40
    assert sum(bool(b.audience_clauses) for b in briefs) >= 60
    from audiencefit.features.synthetic.topics import TOPICS

    names = {t.name for t in TOPICS}
    assert all(set(b.audience) <= names and b.product_topic in names for b in briefs)


def test_evaluation_on_a_tiny_set(small_world: Path, small_features: Path, tmp_path: Path) -> None:
    fs = load_feature_set(small_features)
    briefs = load_briefs(write_briefs(tmp_path / "b.jsonl", BRIEFS))
    truth = world_truth(small_world)
    results = evaluate_briefs(fs, query_embedder(fs), briefs, truth, k=10, product_weights=(0.0, 0.5))
    assert results.height == 3 * 5
    assert set(results["method"]) == {
        "brief reader (product weight 0)",
        "brief reader (product weight 0.5)",
        METHOD_SEGMENT,
        METHOD_WHOLE,
        METHOD_CLAUSES,
    }
    # t1's clause is found as written; the others have none written down
    flags = dict(results.filter(pl.col("method") == METHOD_SEGMENT).select("brief_id", "read_as_written").iter_rows())
    assert flags == {"t1": True, "t2": None, "t3": None}
    # without clauses written down, "as written" is the whole brief
    t2 = results.filter(pl.col("brief_id") == "t2")
    assert (
        t2.filter(pl.col("method") == METHOD_CLAUSES)["ndcg@10"][0]
        == t2.filter(pl.col("method") == METHOD_WHOLE)["ndcg@10"][0]
    )
    assert results["precision@10"].is_between(0, 1).all() and results["ndcg@10"].is_between(0, 1).all()
    # The reader gives the fallback brief the same segment as the whole brief: the same ranking.
    t3 = results.filter(pl.col("brief_id") == "t3")
    reader = t3.filter(pl.col("method") == "brief reader (product weight 0)")["precision@10"][0]
    assert reader == t3.filter(pl.col("method") == METHOD_WHOLE)["precision@10"][0]
    summary = summarize(results, k=10)
    assert set(summary["group"]) == {"all", "product ≠ audience", "style", "order", "language"}
    assert summary.filter((pl.col("group") == "all") & (pl.col("method") == METHOD_SEGMENT))["briefs"][0] == 3
    # deterministic
    again = evaluate_briefs(fs, query_embedder(fs), briefs, truth, k=10, product_weights=(0.0, 0.5))
    assert again.equals(results)


def test_a_perfect_truth_gives_precision_one_and_a_wrong_one_zero(small_features: Path, tmp_path: Path) -> None:
    fs = load_feature_set(small_features)
    ids = fs.creators["creator_id"].to_list()
    briefs = load_briefs(write_briefs(tmp_path / "b.jsonl", BRIEFS[:1]))
    everyone_games = pl.DataFrame({"creator_id": ids, "category": ["gaming"] * len(ids)})
    nobody_games = pl.DataFrame({"creator_id": ids, "category": ["pets"] * len(ids)})
    good = evaluate_briefs(fs, query_embedder(fs), briefs, everyone_games, k=5)
    assert (good["precision@5"] == 1.0).all()
    assert evaluate_briefs(fs, query_embedder(fs), briefs, nobody_games, k=5).height == 0  # audience not in truth


def test_main_with_a_truth_file_and_category_map(small_features: Path, tmp_path: Path, capsys) -> None:
    fs = load_feature_set(small_features)
    ids = fs.creators["creator_id"].to_list()
    truth = tmp_path / "truth.parquet"
    pl.DataFrame(
        {"creator_id": ids, "category": ["Gaming & eSports" if i % 2 else "Pets" for i in range(len(ids))]}
    ).write_parquet(truth)
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"Gaming & eSports": ["gaming"], "Pets": ["pets"]}), encoding="utf-8")
    briefs = write_briefs(tmp_path / "b.jsonl", BRIEFS)
    out = tmp_path / "table.md"
    code = brief_eval.main(
        [
            "--features",
            str(small_features),
            "--truth",
            str(truth),
            "--category-map",
            str(mapping),
            "--briefs",
            str(briefs),
            "--k",
            "10",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| all | 2 |" in printed  # t2's audience (running) is not in this truth
    assert "1 skipped" in printed
    assert out.read_text(encoding="utf-8") == printed


def test_the_youtube_category_map_names_topics() -> None:
    from audiencefit.features.synthetic.topics import TOPICS

    mapping = json.loads((brief_eval.DEFAULT_BRIEFS.parent / "youtube_categories.json").read_text(encoding="utf-8"))
    names = {t.name for t in TOPICS}
    assert mapping and all(set(topics) <= names for topics in mapping.values())


def test_all_creators_ranks_beyond_the_default_follower_range(small_features: Path, tmp_path: Path, capsys) -> None:
    creators = load_feature_set(small_features).creators
    outside = ~creators["followers"].is_between(1_000, 100_000)
    assert outside.any() and not outside.all()
    truth = tmp_path / "truth.parquet"
    # only creators outside the default follower range have the brief's audience
    creators.select(
        "creator_id", category=pl.when(outside).then(pl.lit("gaming")).otherwise(pl.lit("pets"))
    ).write_parquet(truth)
    briefs = write_briefs(tmp_path / "b.jsonl", BRIEFS[:1])
    rows = tmp_path / "rows.csv"
    args = ["--features", str(small_features), "--truth", str(truth), "--briefs", str(briefs), "--k", "10"]
    assert brief_eval.main([*args, "--per-brief", str(rows)]) == 2  # in the default range, nobody has it
    assert "no brief's audience" in capsys.readouterr().err
    assert not rows.exists()
    assert brief_eval.main([*args, "--per-brief", str(rows), "--all-creators"]) == 0
    assert pl.read_csv(rows)["precision@10"].max() > 0  # ranked now, so found by some method


def test_bad_inputs_are_refused_with_where(small_features: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    clauses = json.dumps({**BRIEFS[0], "audience_clauses": "gamers"})
    bad.write_text('{"id": "x"}\nnot json\n' + clauses + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 1: missing .*line 2: not JSON.*line 3: audience_clauses must be"):
        load_briefs(bad)
    no_category = tmp_path / "t.parquet"
    pl.DataFrame({"creator_id": ["a"], "label": ["x"]}).write_parquet(no_category)
    with pytest.raises(InputError, match=r"missing column\(s\) \['category'\]"):
        read_truth(no_category)
    code = brief_eval.main(["--features", str(small_features), "--truth", str(no_category)])
    assert code == 2
    assert "category" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.md"))


def test_subsets_split_the_briefs_by_line_and_cover_them_once() -> None:
    briefs = load_briefs()
    even, odd = brief_eval.subset_of(briefs, "even"), brief_eval.subset_of(briefs, "odd")
    assert [b.id for b in odd] == [b.id for b in briefs[0::2]]  # lines 1, 3, 5, …
    assert [b.id for b in even] == [b.id for b in briefs[1::2]]
    assert sorted(b.id for b in even + odd) == sorted(b.id for b in briefs)
    assert brief_eval.subset_of(briefs, "all") == briefs
    with pytest.raises(InputError, match="subset must be one of all, even, odd"):
        brief_eval.subset_of(briefs, "half")


def test_main_evaluates_only_the_subset_asked_for(small_features: Path, tmp_path: Path, capsys) -> None:
    path = write_briefs(tmp_path / "b.jsonl", BRIEFS)
    truth = tmp_path / "truth.parquet"
    ids = load_feature_set(small_features, verify_checksums=False).creators["creator_id"].to_list()
    pl.DataFrame({"creator_id": ids, "category": ["gaming"] * len(ids)}).write_parquet(truth)
    per_brief = tmp_path / "per.csv"
    args = ["--features", str(small_features), "--truth", str(truth), "--briefs", str(path), "--all-creators"]
    assert brief_eval.main([*args, "--subset", "odd", "--per-brief", str(per_brief)]) == 0
    assert set(pl.read_csv(per_brief)["brief_id"]) == {"t1"}  # t3's audience (pets) is not in the truth
    assert brief_eval.main([*args, "--subset", "even", "--per-brief", str(per_brief)]) == 2  # t2's audience: none
    assert "no brief's audience" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        brief_eval.main([*args, "--subset", "third"])
