"""Data expectations on the synthetic creator world: contracts, keys, determinism and the generative story."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from audiencefit.features.errors import InputError
from audiencefit.features.schemas import TABLE_ORDER, TABLES
from audiencefit.features.synthetic import WorldSummary, generate_world
from audiencefit.features.synthetic.topics import TOPIC_INDEX, TOPICS

N_CREATORS = 600
SEED = 5


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldSummary]:
    out = tmp_path_factory.mktemp("synthetic") / "world"
    return out, generate_world(out, N_CREATORS, SEED)


@pytest.fixture(scope="module")
def tables(world: tuple[Path, WorldSummary]) -> dict[str, pl.DataFrame]:
    root = world[0]
    frames = {name: pl.read_parquet(root / f"{name}.parquet") for name in TABLE_ORDER}
    for name in ("creators", "fit", "campaigns", "followers", "topics"):
        frames[f"truth/{name}"] = pl.read_parquet(root / "truth" / f"{name}.parquet")
    return frames


def _num(value: object) -> float:
    """A polars scalar (mean, median, max, ...) as a float; fails on null."""
    assert isinstance(value, (int, float)), value
    return float(value)


def _days(value: object) -> int:
    assert isinstance(value, timedelta), value
    return value.days


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------------------- contracts, keys


def test_every_table_matches_its_contract(tables: dict[str, pl.DataFrame]) -> None:
    for name in TABLE_ORDER:
        assert tables[name].schema == TABLES[name].polars_schema, name
        assert tables[name].height > 0, name


def test_summary_counts_rows(world: tuple[Path, WorldSummary], tables: dict[str, pl.DataFrame]) -> None:
    _, summary = world
    assert summary.rows() == {name: tables[name].height for name in TABLE_ORDER}
    assert summary.creators == N_CREATORS
    assert summary.brands == max(10, N_CREATORS // 125)


def test_no_staging_directory_is_left_behind(world: tuple[Path, WorldSummary]) -> None:
    root = world[0]
    assert [p.name for p in root.parent.iterdir()] == [root.name]


def test_primary_and_foreign_keys_hold(tables: dict[str, pl.DataFrame]) -> None:
    for name in TABLE_ORDER:
        schema = TABLES[name]
        keys = tables[name].select(schema.primary_key)
        assert keys.is_duplicated().sum() == 0, f"{name}: duplicate {schema.primary_key}"
        for fk in schema.foreign_keys:
            values = tables[name][fk.column].drop_nulls().unique()
            missing = values.filter(~values.is_in(tables[fk.ref_table][fk.ref_column].implode()))
            assert missing.len() == 0, f"{name}.{fk.column} -> {fk.ref_table}: {missing.head(3).to_list()}"


def test_values_respect_contract_bounds(tables: dict[str, pl.DataFrame]) -> None:
    for name in TABLE_ORDER:
        frame = tables[name]
        for col in TABLES[name].columns:
            series = frame[col.name]
            if not col.nullable:
                assert series.null_count() == 0, f"{name}.{col.name} has nulls"
            if col.min_value is not None:
                assert (series.drop_nulls() >= col.min_value).all(), f"{name}.{col.name} below minimum"
            if col.allowed is not None:
                assert series.drop_nulls().is_in(list(col.allowed)).all(), f"{name}.{col.name} outside vocabulary"


def test_truth_covers_every_pair_and_every_entity(tables: dict[str, pl.DataFrame]) -> None:
    fit = tables["truth/fit"]
    assert fit.height == tables["creators"].height * tables["segments"].height
    assert fit.select(["segment_id", "creator_id"]).is_duplicated().sum() == 0
    assert _num(fit["true_fit"].min()) >= 0.0 and _num(fit["true_fit"].max()) <= 1.0
    truth_creators = tables["truth/creators"]
    assert truth_creators["creator_id"].to_list() == tables["creators"]["creator_id"].to_list()
    assert truth_creators["authenticity"].is_between(0.0, 1.0).all()
    assert truth_creators["content_topics"].list.len().unique().to_list() == [len(TOPICS)]
    assert np.allclose(truth_creators["audience_topics"].list.sum().to_numpy(), 1.0, atol=1e-4)
    truth_followers = tables["truth/followers"]
    assert truth_followers.select("creator_id", "follower_id").equals(
        tables["followers"].select("creator_id", "follower_id")
    )
    assert tables["truth/campaigns"]["campaign_id"].to_list() == tables["campaigns"]["campaign_id"].to_list()


def test_topics_are_many_and_overlap(tables: dict[str, pl.DataFrame]) -> None:
    topics = tables["truth/topics"]
    assert topics.height >= 20
    assert _num(topics["keywords"].list.len().min()) >= 5
    running, cycling = TOPICS[TOPIC_INDEX["running"]], TOPICS[TOPIC_INDEX["cycling"]]
    vegan, baking = TOPICS[TOPIC_INDEX["vegan_cooking"]], TOPICS[TOPIC_INDEX["baking"]]
    assert set(running.nouns) & set(cycling.nouns), "related topics must share words"
    assert set(vegan.nouns) & set(baking.nouns), "related topics must share words"


# ------------------------------------------------------------------------------------------------ the story


def _creator_er(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Median engagement rate of each creator's posts, with follower count and truth."""
    return (
        tables["posts"]
        .join(tables["creators"].select("creator_id", "followers"), on="creator_id")
        .group_by("creator_id")
        .agg(
            ((pl.col("likes") + pl.col("comments")) / pl.col("followers")).median().alias("er"),
            pl.col("followers").first(),
        )
        .join(tables["truth/creators"].select("creator_id", "inflated"), on="creator_id")
    )


def test_follower_counts_are_mostly_micro(tables: dict[str, pl.DataFrame]) -> None:
    followers = tables["creators"]["followers"]
    assert _num(followers.is_between(1_000, 100_000).mean()) > 0.8
    assert (followers < 1_000).sum() > 0
    assert (followers > 100_000).sum() > 0
    assert _num(followers.max()) < 5_000_000


def test_engagement_rate_falls_with_size(tables: dict[str, pl.DataFrame]) -> None:
    er = _creator_er(tables).filter(~pl.col("inflated"))
    bounds = [0, 5_000, 20_000, 100_000, 10**9]
    medians = [
        _num(er.filter(pl.col("followers").is_between(lo, hi, closed="left"))["er"].median())
        for lo, hi in itertools.pairwise(bounds)
    ]
    assert all(a > b for a, b in itertools.pairwise(medians)), medians
    small = _num(er.filter(pl.col("followers").is_between(1_000, 5_000))["er"].median())
    near_100k = _num(er.filter(pl.col("followers").is_between(50_000, 200_000))["er"].median())
    assert 0.03 < small < 0.08, small
    assert 0.005 < near_100k < 0.025, near_100k


def test_inflated_creators_engage_less_for_their_size(tables: dict[str, pl.DataFrame]) -> None:
    er = _creator_er(tables).filter(pl.col("er") > 0)
    authentic = er.filter(~pl.col("inflated"))
    slope, intercept = np.polyfit(np.log(authentic["followers"].to_numpy()), np.log(authentic["er"].to_numpy()), 1)
    residual = np.log(er["er"].to_numpy()) - (slope * np.log(er["followers"].to_numpy()) + intercept)
    inflated = er["inflated"].to_numpy()
    assert inflated.sum() >= 10
    assert np.median(residual[inflated]) < np.median(residual[~inflated]) - 0.2


def test_inflated_samples_hold_more_bots(tables: dict[str, pl.DataFrame]) -> None:
    bots = (
        tables["truth/followers"]
        .join(tables["truth/creators"].select("creator_id", "inflated"), on="creator_id")
        .group_by("inflated")
        .agg(pl.col("is_bot").mean())
    )
    share = dict(zip(bots["inflated"].to_list(), bots["is_bot"].to_list(), strict=True))
    assert share[True] > 0.3
    assert 0.02 < share[False] < 0.15


def test_conversions_rise_with_true_fit(tables: dict[str, pl.DataFrame]) -> None:
    joined = tables["campaigns"].join(tables["truth/campaigns"], on="campaign_id").drop_nulls("conversions")
    rho = joined.select(pl.corr("conversions", "true_fit", method="spearman")).item()
    assert rho > 0.3, rho


def test_true_fit_matches_pairwise_truth(tables: dict[str, pl.DataFrame]) -> None:
    pairs = tables["truth/campaigns"].join(tables["truth/fit"], on=["segment_id", "creator_id"])
    assert pairs.height == tables["campaigns"].height
    assert np.allclose(pairs["true_fit"], pairs["true_fit_right"], rtol=1e-4, atol=1e-6)


def test_organic_brand_mentions_favour_brands_the_audience_fits(tables: dict[str, pl.DataFrame]) -> None:
    handles = tables["brands"].select("brand_id", pl.col("handles").str.split(" ").list.first().alias("handle"))
    fit = (
        tables["truth/fit"]
        .join(tables["segments"].select("segment_id", "brand_id"), on="segment_id")
        .group_by("creator_id", "brand_id")
        .agg(pl.col("true_fit").max())
    )
    mentioned = (
        tables["posts"]
        .filter(~pl.col("sponsored"))
        .select("creator_id", "caption")
        .join(handles, how="cross")
        .filter(pl.col("caption").str.contains("@" + pl.col("handle") + r"\b"))
        .select("creator_id", "brand_id")
        .unique()
        .join(fit, on=["creator_id", "brand_id"])
    )
    assert mentioned.height >= 30
    assert _num(mentioned["true_fit"].mean()) > 2 * _num(fit["true_fit"].mean())


def test_campaigns_are_plentiful_and_spread_in_time(tables: dict[str, pl.DataFrame]) -> None:
    campaigns = tables["campaigns"]
    assert 0.5 * N_CREATORS <= campaigns.height <= 1.0 * N_CREATORS
    assert _num(campaigns.group_by("segment_id").len()["len"].min()) >= 3
    span = campaigns.select(pl.col("start_date").max() - pl.col("start_date").min()).item()
    assert _days(span) > 365


def test_campaign_deliveries_appear_after_their_start(tables: dict[str, pl.DataFrame]) -> None:
    brands = tables["brands"].select("brand_id", pl.col("handles").str.split(" ").list.first().alias("handle"))
    delivered = (
        tables["campaigns"]
        .join(brands, on="brand_id")
        .join(tables["posts"].filter(pl.col("sponsored")), on="creator_id")
        .filter(
            (pl.col("posted_at").dt.date() >= pl.col("start_date"))
            & (pl.col("posted_at").dt.date() <= pl.col("start_date") + pl.duration(days=7))
        )
        .filter(pl.col("caption").str.contains(pl.col("handle"), literal=True))
    )
    assert delivered["campaign_id"].n_unique() > 0.95 * tables["campaigns"].height


def test_text_is_messy_like_real_data(tables: dict[str, pl.DataFrame]) -> None:
    posts, creators, followers = tables["posts"], tables["creators"], tables["followers"]
    captions = posts["caption"]
    assert 0.005 < _num((captions.is_null() | (captions == "")).mean()) < 0.1
    assert _num(captions.str.contains("#").mean()) > 0.5
    assert _num(captions.str.contains("@").mean()) > 0.05
    assert captions.str.contains("https://").sum() > 0
    assert (captions.str.starts_with("#") & ~captions.str.contains(r"[a-z] [a-z]")).sum() > 0  # hashtag-only
    foreign = ("¿Quién", "Bom dia", "Heute", "Petit", "Oggi", "Hari ini", "Meu ", "Mon ", "Mi ", "Il mio")
    assert captions.str.contains_any(list(foreign)).sum() > 20
    assert 0.08 < _num(creators["bio"].is_null().mean()) < 0.22
    assert _num((followers["bio"].is_null() | (followers["bio"] == "")).mean()) > 0.1
    assert 0.05 < _num(posts["sponsored"].mean()) < 0.2
    platforms = creators["platform"].value_counts().sort("count", descending=True)["platform"].to_list()
    assert platforms[0] == "instagram" and {"tiktok", "youtube"} <= set(platforms)


def test_posts_span_two_years_before_export(tables: dict[str, pl.DataFrame]) -> None:
    first, last = (
        tables["posts"].select(pl.col("posted_at").min().alias("a"), pl.col("posted_at").max().alias("b")).row(0)
    )
    assert last < datetime(2026, 6, 30, tzinfo=UTC)
    assert _days(last - first) > 600
    assert tables["posts"].height / N_CREATORS >= 10


# ------------------------------------------------------------------------------------ determinism, safety, CLI


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    generate_world(tmp_path / "a", 120, 42, followers_per_creator=8)
    generate_world(tmp_path / "b", 120, 42, followers_per_creator=8)
    generate_world(tmp_path / "c", 120, 43, followers_per_creator=8)
    a, b, c = (_tree_hashes(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[name] != c[name] for name in a if name.endswith(("creators.parquet", "posts.parquet")))


def test_refuses_a_non_empty_directory_unless_overwriting(tmp_path: Path) -> None:
    out = tmp_path / "world"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        generate_world(out, 30, 1)
    assert (out / "notes.txt").read_text() == "keep me"
    generate_world(out, 30, 1, overwrite=True)
    assert not (out / "notes.txt").exists()
    assert (out / "creators.parquet").exists()


def test_cli_demo_data_writes_a_world_and_guards_the_directory(tmp_path: Path) -> None:
    import audiencefit.cli  # noqa: F401  (registers the commands)
    from audiencefit.cli._app import app

    runner = CliRunner()
    out = tmp_path / "demo"
    args = ["demo-data", "--creators", "40", "--seed", "3", "--out", str(out), "--followers-per-creator", "5"]
    first = runner.invoke(app, [*args, "--brands", "4"])
    assert first.exit_code == 0, first.output
    assert pl.read_parquet(out / "brands.parquet").height == 4
    assert pl.read_parquet(out / "creators.parquet").height == 40

    refused = runner.invoke(app, args)
    assert isinstance(refused.exception, InputError)
    assert pl.read_parquet(out / "brands.parquet").height == 4  # untouched

    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert pl.read_parquet(out / "brands.parquet").height == 10


def test_cli_help_documents_every_option() -> None:
    import audiencefit.cli  # noqa: F401
    from audiencefit.cli._app import app

    result = CliRunner().invoke(app, ["demo-data", "--help"])
    assert result.exit_code == 0
    for option in (
        "--creators",
        "--seed",
        "--out",
        "--followers-per-creator",
        "--brands",
        "--max-fit-pairs",
        "--force",
    ):
        assert option in result.output


def test_captions_are_real_length_and_shape(tables: dict[str, pl.DataFrame]) -> None:
    # Real Instagram captions averaged ~320 characters with a tail past 1,000, hashtag blocks of 5–30 tags, line
    # breaks, emoji runs and code-mixed languages (issue 19); the benchmarks measure speed on these.
    posts = tables["posts"].join(tables["creators"].select("creator_id", "platform", "country"), on="creator_id")
    text = pl.col("caption").fill_null("")
    shaped = posts.with_columns(
        chars=text.str.len_chars(), tags=text.str.count_matches(r"#\w"), lines=text.str.count_matches("\n")
    )
    instagram = shaped.filter(pl.col("platform") == "instagram")
    assert 250 < _num(instagram["chars"].mean()) < 420
    assert 200 < _num(shaped["chars"].mean()) < 400
    assert _num((shaped["chars"] > 1000).mean()) > 0.005
    assert _num(shaped["chars"].max()) > 1500
    with_tags = instagram.filter(pl.col("tags") > 0)["tags"]
    assert _num((with_tags >= 5).mean()) > 0.6 and _num(with_tags.max()) >= 20
    assert _num((shaped["lines"] > 0).mean()) > 0.4
    captions = shaped["caption"].drop_nulls()
    assert captions.str.contains("\n.\n.\n.\n", literal=True).sum() > 20  # tags below a column of dots
    assert captions.str.contains("\u2800", literal=True).sum() > 5  # ... or of invisible blank lines
    assert captions.str.contains(r"(?:\p{Extended_Pictographic}\x{FE0F}?){3}").sum() > 100  # emoji runs
    # Code-mixing: local-language captions carry English lines and English captions local ones.
    spanish = ("¿Quién", "Hoy tocó", "Mi ", "Nuevo día", "Gracias por", "Cuéntenme", "Llevo ")
    english = ("Honestly", "Not gonna lie", "Swipe", "Reminder", "Lowkey", "This is your sign", "Coffee first")
    mixed = captions.filter(captions.str.contains_any(list(spanish)) & captions.str.contains_any(list(english)))
    assert mixed.len() > 5
    # Hashtag-only captions now carry a real block.
    only_tags = shaped.filter(pl.col("caption").str.starts_with("#") & ~pl.col("caption").str.contains(r"[a-z] [a-z]"))
    assert _num(only_tags["tags"].mean()) >= 5
