"""What lets the generator write a million-creator world in bounded memory changes no byte of a smaller one:
brand mentions drawn in blocks, and truth/fit capped at a number of (creator, segment) pairs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from audiencefit.features.errors import InputError
from audiencefit.features.synthetic import generate_world, story, tables
from audiencefit.features.synthetic.text import Picker
from audiencefit.features.synthetic.world import fit_segment_count

SEED = 9


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def drawn() -> tuple[story.Creators, story.Brands, story.Campaigns]:
    creators = story.draw_creators(np.random.default_rng([SEED, 1]), 400, 10)
    brands = story.draw_brands(np.random.default_rng([SEED, 2]), 60)  # many brands: several blocks of mentions
    campaigns = story.draw_campaigns(np.random.default_rng([SEED, 3]), creators, brands)
    return creators, brands, campaigns


def test_mentions_drawn_in_blocks_equal_one_whole_array(
    drawn: tuple[story.Creators, story.Brands, story.Campaigns],
) -> None:
    creators, brands, campaigns = drawn
    whole = story.draw_posts(np.random.default_rng([SEED, 10]), creators, 0, 400, brands=brands, campaigns=campaigns)
    mentions = int((whole.brand >= 0).sum())
    assert mentions > 200
    for block in (1, brands.n * 7 + 3, 10**9):  # one post per block, uneven blocks, one block
        blocked = story.draw_posts(
            np.random.default_rng([SEED, 10]),
            creators,
            0,
            400,
            brands=brands,
            campaigns=campaigns,
            mention_block=block,
        )
        for name in whole.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(blocked, name), getattr(whole, name), err_msg=name)


def test_mentioned_brands_are_the_argmax_of_one_noise_array() -> None:
    """The blocked draw against the formula written out with a single (posts, brands) noise array."""
    rng = np.random.default_rng(3)
    affinity = rng.random((50, 37))
    rows = rng.integers(0, 50, 333)
    expected = (12.0 * affinity[rows] + np.random.default_rng(4).gumbel(size=(333, 37))).argmax(axis=1)
    for block in (1, 100, 37 * 333):
        got = story._mentioned_brands(np.random.default_rng(4), affinity, rows, block)
        np.testing.assert_array_equal(got, expected)


def test_fit_segment_count_caps_pairs_only_beyond_the_limit() -> None:
    assert fit_segment_count(20_000, 303) == 303
    assert fit_segment_count(100_000, 1_560) == 1_560  # 156M pairs: every segment, as before
    assert fit_segment_count(1_000_000, 15_577) == 200
    assert fit_segment_count(1_000, 50, max_pairs=10_000) == 10
    assert fit_segment_count(1_000, 50, max_pairs=10) == 1  # at least one segment
    assert fit_segment_count(1_000, 50, max_pairs=50_000) == 50  # exactly at the limit: all


def test_truth_fit_of_the_first_segments_is_a_slice_of_the_whole(
    drawn: tuple[story.Creators, story.Brands, story.Campaigns],
) -> None:
    creators, brands, _ = drawn
    texts = tables.render_brands(Picker(np.random.default_rng([SEED, 4])), brands)
    whole = tables.truth_fit_frame(creators, brands, texts, 10, 60)
    assert brands.first_segments(brands.n_segments) is brands
    first = brands.first_segments(7)
    assert first.n_segments == 7 and first.n == brands.n
    part = tables.truth_fit_frame(creators, first, texts, 10, 60)
    assert part.height == 50 * 7
    kept = whole.filter(pl.col("segment_id").is_in(texts.seg_ids[:7]))
    assert part.equals(kept)


def test_a_capped_world_differs_from_the_full_one_only_in_truth_fit(tmp_path: Path) -> None:
    full = generate_world(tmp_path / "full", 150, SEED, followers_per_creator=5)
    n_segments = pl.read_parquet(tmp_path / "full" / "segments.parquet").height
    capped = generate_world(tmp_path / "capped", 150, SEED, followers_per_creator=5, max_fit_pairs=150 * 3 + 20)
    assert capped == full.__class__(path=tmp_path / "capped", **full.rows())

    a, b = _hashes(tmp_path / "full"), _hashes(tmp_path / "capped")
    assert a.keys() == b.keys()
    differ = {name for name in a if a[name] != b[name]}
    assert differ == {"truth/fit.parquet", "truth/world.json"}

    fit_full = pl.read_parquet(tmp_path / "full" / "truth" / "fit.parquet")
    fit_capped = pl.read_parquet(tmp_path / "capped" / "truth" / "fit.parquet")
    first = sorted(fit_full["segment_id"].unique().to_list())[:3]
    assert fit_capped["segment_id"].n_unique() == 3 and fit_full["segment_id"].n_unique() == n_segments > 3
    assert fit_capped.equals(fit_full.filter(pl.col("segment_id").is_in(first)))

    meta_full = json.loads((tmp_path / "full" / "truth" / "world.json").read_text())
    meta_capped = json.loads((tmp_path / "capped" / "truth" / "world.json").read_text())
    assert "truth_fit_segments" not in meta_full
    assert meta_capped.pop("truth_fit_segments") == 3
    assert meta_capped["rows"].pop("truth/fit") == 150 * 3
    meta_full["rows"].pop("truth/fit")
    assert meta_capped == meta_full


def test_max_fit_pairs_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="max_fit_pairs"):
        generate_world(tmp_path / "w", 20, 1, max_fit_pairs=0)
    assert not (tmp_path / "w").exists()
