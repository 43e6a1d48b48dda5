"""Audience overlap between creators: how many real people two (or more) creators reach in common.

People follow several creators of the same niche, so a set of creators reaches fewer unique people than the sum of
their audiences. The estimate models audiences as drawn from shared *communities*: one pool of people per
(audience interest cluster, country). A creator's estimated real audience in community c is

    a[i, c] = followers[i] × authentic share[i] × audience_dist[i, k] × country share[i, g]

and the pool holds N[c] = demand[c] / κ people, where demand[c] = Σ_i a[i, c] over every creator of the feature set
and κ is how many of the feature set's creators an average person follows. Two creators drawing their audiences
independently from the pool share a[i, c] · a[j, c] / N[c] people in c, in expectation.

κ is not known a priori; the follower samples measure it. A person in both audiences shows up in both samples
with probability f_i · f_j (f = sample size / followers), so over all pairs of creators the number of shared
sampled follower keys is Poisson with mean κ · Σ_pairs O¹_ij f_i f_j (O¹ = the overlap at κ = 1): a
capture–recapture estimate, shrunk toward a prior κ₀ = 3 with a Gamma prior. For one pair, the shared sampled keys
m_ij are direct evidence too: with a Gamma(α = 1) prior centred on the community estimate Ō_ij, the posterior mean
is (α + m_ij) / (α / Ō_ij + f_i f_j).

Everything here is pure: arrays in, arrays out (the per-feature-set estimate is cached while the set lives).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
import polars as pl

from audiencefit.features.featureset import FeatureSet
from audiencefit.models.pair_features import view_arrays

PRIOR_FOLLOWS = 3.0  # κ₀: creators an average community member follows, before the samples say otherwise
PRIOR_FOLLOWS_STRENGTH = 2.0  # Gamma shape of the prior on κ (in "shared keys" worth of evidence)
PAIR_PRIOR_SHAPE = 1.0  # α of the per-pair Gamma prior around the community estimate
OWN_COUNTRY_SHARE = 0.7  # without an audience sample: share of the audience in the creator's own country
OTHER = "other"  # the country column for audiences whose country is unknown


@dataclass(frozen=True)
class AudienceModel:
    """The community estimate of one feature set: arrays over all its creators (rows follow ``fs.creators``)."""

    countries: tuple[str, ...]  # country columns of ``geo`` (the last is OTHER)
    real: np.ndarray  # (n,) estimated real followers
    dist: np.ndarray  # (n, k) share of the audience per interest cluster
    geo: np.ndarray  # (n, G) share of the audience per country column
    demand: np.ndarray  # (k, G) Σ_i a[i, c]
    sample_fraction: np.ndarray  # (n,) sampled followers / followers (0 without a sample)
    follows: float  # κ estimate
    shared_pairs: int  # shared sampled keys over all pairs of creators (the evidence behind κ)
    creator_ids: tuple[str, ...]

    @property
    def pool(self) -> np.ndarray:
        """(k·G,) estimated people per community (never below the largest audience in it)."""
        return np.asarray(np.maximum(self.demand.reshape(-1) / self.follows, 1.0), dtype=np.float64)

    def audiences(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), k·G) estimated real audience of each creator in each community."""
        rows = np.asarray(rows, dtype=np.int64)
        a = (self.real[rows][:, None] * self.dist[rows])[:, :, None] * self.geo[rows][:, None, :]
        return np.asarray(a.reshape(len(rows), -1), dtype=np.float64)

    def coverage(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), k·G) share of each community's people in each creator's audience (at most 1)."""
        return np.asarray(np.clip(self.audiences(rows) / self.pool[None, :], 0.0, 1.0), dtype=np.float64)

    def country_weights(self, countries: tuple[str, ...]) -> np.ndarray:
        """(G,) 1 for the given countries (all when empty), else 0."""
        if not countries:
            return np.ones(len(self.countries))
        wanted = set(countries)
        return np.array([1.0 if c in wanted else 0.0 for c in self.countries])


def _geo_matrix(fs: FeatureSet) -> tuple[tuple[str, ...], np.ndarray]:
    arrays = view_arrays(fs)
    geo_countries = (
        fs.audience_geo.filter(pl.col("dimension") == "country")["value"].unique().sort().to_list()
        if fs.audience_geo.height
        else []
    )
    own = sorted({c for c in arrays.country if c is not None})
    countries = (*sorted(set(geo_countries) | set(own)), OTHER)
    col = {c: j for j, c in enumerate(countries)}
    n = fs.creators.height
    geo = np.zeros((n, len(countries)))
    for c in countries[:-1]:
        geo[:, col[c]] = arrays.country_share(c)
    sampled = arrays.has_geo & (geo.sum(axis=1) > 0)
    geo[sampled] /= geo[sampled].sum(axis=1, keepdims=True)
    background = geo[sampled].mean(axis=0) if sampled.any() else np.eye(len(countries))[-1]
    for r in np.flatnonzero(~sampled):
        home = arrays.country[r]
        geo[r] = background
        if home is not None:
            geo[r] = (1.0 - OWN_COUNTRY_SHARE) * background
            geo[r, col[home]] += OWN_COUNTRY_SHARE
    return countries, geo


def _shared_key_pairs(keys: pl.DataFrame | None) -> int:
    """Σ over follower keys of (creators sharing the key choose 2)."""
    if keys is None or keys.height == 0:
        return 0
    counts = keys.group_by("follower_key").agg(n=pl.len())["n"].to_numpy().astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def build_audience_model(fs: FeatureSet) -> AudienceModel:
    """The community estimate for every creator of ``fs``, with κ calibrated on the follower samples."""
    arrays = view_arrays(fs)
    followers = fs.creators["followers"].fill_null(0).to_numpy().astype(np.float64)
    real = followers * arrays.authentic.astype(np.float64)
    dist = np.asarray(fs.audience_dist, dtype=np.float64)
    totals = dist.sum(axis=1, keepdims=True)
    dist = np.divide(dist, totals, out=np.zeros_like(dist), where=totals > 0)
    countries, geo = _geo_matrix(fs)
    weighted = real[:, None] * dist
    demand = weighted.T @ geo  # (k, G)
    fraction = np.zeros(len(real))
    keys = fs.follower_keys
    if keys is not None and keys.height:
        per_creator = keys.group_by("creator_id").agg(n=pl.len())
        row_of = fs.row_of()
        rows = np.array([row_of.get(c, -1) for c in per_creator["creator_id"].to_list()], dtype=np.int64)
        ok = rows >= 0
        fraction[rows[ok]] = per_creator["n"].to_numpy()[ok] / np.maximum(followers[rows[ok]], 1.0)
        fraction = np.clip(fraction, 0.0, 1.0)
    # Expected shared sampled keys over all pairs at κ = 1: ½ [Σ_c (Σ_i f_i a_ic)² − Σ_i Σ_c (f_i a_ic)²] / D_c.
    inv = np.divide(1.0, demand, out=np.zeros_like(demand), where=demand > 0)
    fa = (fraction * real)[:, None] * dist
    total = fa.T @ geo
    self_terms = (((fa**2) @ inv) * geo**2).sum()
    expected_at_one = 0.5 * float((total**2 * inv).sum() - self_terms)
    shared = _shared_key_pairs(keys)
    follows = (PRIOR_FOLLOWS_STRENGTH + shared) / (PRIOR_FOLLOWS_STRENGTH / PRIOR_FOLLOWS + max(expected_at_one, 0.0))
    return AudienceModel(
        countries=countries,
        real=real,
        dist=dist,
        geo=geo,
        demand=demand,
        sample_fraction=fraction,
        follows=float(follows),
        shared_pairs=shared,
        creator_ids=tuple(fs.creators["creator_id"].to_list()),
    )


_MODELS: dict[int, tuple[weakref.ref[FeatureSet], AudienceModel]] = {}
_LOCK = threading.Lock()


def audience_model(fs: FeatureSet) -> AudienceModel:
    """:func:`build_audience_model`, computed once per loaded feature set."""
    key = id(fs)
    with _LOCK:
        cached = _MODELS.get(key)
        if cached is not None and cached[0]() is fs:
            return cached[1]
        model = build_audience_model(fs)
        _MODELS[key] = (weakref.ref(fs), model)
        weakref.finalize(fs, _MODELS.pop, key, None)
        return model


def shared_sample_counts(fs: FeatureSet, rows: np.ndarray) -> np.ndarray:
    """(len(rows), len(rows)) number of follower keys in both creators' samples (0 on the diagonal)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((len(rows), len(rows)), dtype=np.int64)
    keys = fs.follower_keys
    if keys is None or keys.height == 0 or len(rows) < 2:
        return out
    ids = fs.creators["creator_id"].to_numpy()[rows]
    pos = pl.DataFrame({"creator_id": ids, "pos": np.arange(len(rows), dtype=np.int64)})
    sub = keys.join(pos, on="creator_id")
    pairs = (
        sub.join(sub, on="follower_key", suffix="_b")
        .filter(pl.col("pos") != pl.col("pos_b"))
        .group_by("pos", "pos_b")
        .agg(n=pl.len())
    )
    out[pairs["pos"].to_numpy(), pairs["pos_b"].to_numpy()] = pairs["n"].to_numpy()
    return out


def community_overlap(model: AudienceModel, rows: np.ndarray) -> np.ndarray:
    """(len(rows), len(rows)) expected shared real audience from the audience representations alone."""
    a = model.audiences(rows)
    pool = model.pool
    out: np.ndarray = (a / pool[None, :]) @ a.T
    real = model.real[np.asarray(rows, dtype=np.int64)]
    out = np.minimum(out, np.minimum(real[:, None], real[None, :]))
    np.fill_diagonal(out, real)
    return out


def pair_overlap(prior: np.ndarray, shared: np.ndarray, fraction_a: np.ndarray, fraction_b: np.ndarray) -> np.ndarray:
    """Posterior mean shared audience: Gamma(α, α / prior) prior, ``shared`` keys ~ Poisson(O · f_a · f_b)."""
    prior = np.maximum(np.asarray(prior, dtype=np.float64), 1e-9)
    rate = PAIR_PRIOR_SHAPE / prior + np.asarray(fraction_a) * np.asarray(fraction_b)
    return np.asarray((PAIR_PRIOR_SHAPE + np.asarray(shared, dtype=np.float64)) / rate, dtype=np.float64)


@dataclass(frozen=True)
class Overlap:
    """Estimated audience overlap of two creators."""

    creator_a: str
    creator_b: str
    real_audience_a: float
    real_audience_b: float
    shared_audience: float  # expected real people following both
    from_representation: float  # the community estimate alone
    shared_sample_keys: int  # follower keys seen in both samples
    sample_size_a: int
    sample_size_b: int
    jaccard: float  # shared / (a + b − shared)
    share_of_a: float  # shared / a
    share_of_b: float


def estimate_overlaps(fs: FeatureSet, rows: np.ndarray) -> np.ndarray:
    """(len(rows), len(rows)) expected shared real audience, combining representations and follower samples."""
    rows = np.asarray(rows, dtype=np.int64)
    model = audience_model(fs)
    prior = community_overlap(model, rows)
    shared = shared_sample_counts(fs, rows)
    f = model.sample_fraction[rows]
    real = model.real[rows]
    post = np.minimum(pair_overlap(prior, shared, f[:, None], f[None, :]), np.minimum(real[:, None], real[None, :]))
    np.fill_diagonal(post, real)
    return np.asarray(post, dtype=np.float64)


def overlap_of(fs: FeatureSet, row_a: int, row_b: int) -> Overlap:
    """The overlap of two creators (rows of ``fs``), with the evidence behind it."""
    rows = np.array([row_a, row_b], dtype=np.int64)
    model = audience_model(fs)
    prior = community_overlap(model, rows)[0, 1]
    shared = int(shared_sample_counts(fs, rows)[0, 1])
    post = float(estimate_overlaps(fs, rows)[0, 1]) if row_a != row_b else float(model.real[row_a])
    a, b = float(model.real[row_a]), float(model.real[row_b])
    sizes = np.round(model.sample_fraction[rows] * fs.creators["followers"].fill_null(0).to_numpy()[rows])
    ids = model.creator_ids
    union = a + b - post
    return Overlap(
        creator_a=ids[row_a],
        creator_b=ids[row_b],
        real_audience_a=a,
        real_audience_b=b,
        shared_audience=post,
        from_representation=float(prior),
        shared_sample_keys=shared,
        sample_size_a=int(sizes[0]),
        sample_size_b=int(sizes[1]),
        jaccard=post / union if union > 0 else 0.0,
        share_of_a=post / a if a > 0 else 0.0,
        share_of_b=post / b if b > 0 else 0.0,
    )
