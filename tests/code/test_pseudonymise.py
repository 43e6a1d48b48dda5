"""Keyed pseudonymisation of follower ids: exact HMAC, deterministic, keyed, null-safe, fast on many ids."""

from __future__ import annotations

import hashlib
import hmac
import time

import polars as pl
import pytest

from audiencefit.features.pseudonymise import PSEUDONYM_LENGTH, pseudonymise_ids


def reference(secret: str, value: str) -> str:
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_LENGTH]


@pytest.mark.parametrize("secret", ["s3cret", "k" * 64, "a much longer secret than one sha-256 block " * 3, "clé"])
def test_matches_the_standard_library_hmac(secret):
    ids = ["anna_k", "Ben.T", "çağrı_ü", "🍞bakes", "x" * 200, ""]
    out = pseudonymise_ids(pl.Series("follower_id", ids), secret)
    assert out.to_list() == [reference(secret, i) for i in ids]


def test_is_deterministic_and_keeps_name_length_and_nulls():
    ids = pl.Series("follower_id", ["a", None, "b", "a"])
    first = pseudonymise_ids(ids, "secret")
    second = pseudonymise_ids(ids, "secret")
    assert first.to_list() == second.to_list()
    assert first.name == "follower_id"
    assert first.dtype == pl.String
    assert first[1] is None
    assert first[0] == first[3] != first[2]
    assert all(len(v) == PSEUDONYM_LENGTH and int(v, 16) >= 0 for v in first.drop_nulls())


def test_is_keyed_a_different_secret_gives_different_ids():
    ids = pl.Series(["anna_k", "ben_t", "carl_dev"])
    one = pseudonymise_ids(ids, "secret-one")
    two = pseudonymise_ids(ids, "secret-two")
    assert set(one.to_list()).isdisjoint(two.to_list())
    assert set(one.to_list()).isdisjoint(ids.to_list())


def test_non_text_ids_are_hashed_as_their_text():
    out = pseudonymise_ids(pl.Series([12, 7]), "secret")
    assert out.to_list() == [reference("secret", "12"), reference("secret", "7")]


def test_empty_secret_is_refused():
    with pytest.raises(ValueError, match="must not be empty"):
        pseudonymise_ids(pl.Series(["a"]), "")


def test_many_ids_take_well_under_a_second_per_hundred_thousand():
    ids = pl.Series([f"user_{i}" for i in range(200_000)] * 2)
    started = time.perf_counter()
    out = pseudonymise_ids(ids, "secret")
    elapsed = time.perf_counter() - started
    assert out.len() == 400_000
    assert out.n_unique() == 200_000
    assert out[17] == reference("secret", "user_17")
    assert elapsed < 5.0, f"pseudonymising 400k ids took {elapsed:.1f}s"
