"""The on-disk feature set: what ``features build`` writes and what the index, the models and the service read.

Layout of a feature set directory::

    manifest.json              version, schema hash, input fingerprint, embedder id, as-of, row counts, checksums
    creators.parquet           one row per creator: profile columns, statistics, audience quality, sources
    terms.parquet              creator_id, kind (mention|hashtag), term, count, last_used_at
    audience_geo.parquet       creator_id, dimension (country|age_band|gender), value, share
    clusters.parquet           cluster_id, size (basis rows assigned, all partitions), top_terms (of the
                               k-means sample)
    vectors/bio.npy            float32 (n_creators, dim), row i belongs to creators.parquet row i
    vectors/content.npy        float32 (n_creators, dim)
    vectors/audience.npy       float32 (n_creators, dim)
    vectors/audience_dist.npy  float32 (n_creators, k): share of the audience in each interest cluster
    vectors/centroids.npy      float32 (k, dim)
    follower_keys.parquet      optional: creator_id, follower_key (pseudonymised) of each creator's follower sample
    recent_captions.parquet    optional: creator_id, rank (0 = newest), caption: the newest captions per creator as
                               of the cut-off, which the service quotes in explanations (without the raw data)
    update_state.parquet       creator_id, digest, max_seen_at, basis_counts: what ``features update`` compares and
                               carries over (not loaded by the service)

Arrays are plain ``.npy`` loaded with ``allow_pickle=False``; nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.features.io import sha256_file
from audiencefit.features.mapped_tables import mapped_table
from audiencefit.features.stored_paths import MAX_MANIFEST_BYTES, checksum_table, contained_path, read_regular

# Bump when the meaning, columns or layout of a feature changes: models record the version they were trained on
# and refuse a feature set of another version. 2: audience clusters fitted on a key-ordered sample (the partitioned
# build, audiencefit.features.cluster_sample), parquet written in fixed row groups.
FEATURE_VERSION = "2"
MANIFEST = "manifest.json"
VECTOR_FILES = ("bio", "content", "audience", "audience_dist", "centroids")
TABLE_FILES = ("creators", "terms", "audience_geo", "clusters")
# The tables a table cache maps (clusters: a few rows).
MAPPED_TABLES = ("creators", "terms", "audience_geo")
# Optional table (absent when the input had no followers, and in feature sets built before it existed).
FOLLOWER_KEYS = "follower_keys"
# Optional table (absent in feature sets built before it existed): captions to quote in explanations.
RECENT_CAPTIONS = "recent_captions"
# Written by every build since feature version 2 and never loaded by the service: per creator, the digest of its raw
# rows, its newest row's instant and its basis rows per audience cluster (``audiencefit.features.update`` compares and
# carries them over).
UPDATE_STATE = "update_state"
UPDATE_STATE_SCHEMA = {
    "creator_id": pl.String,
    "digest": pl.UInt64,
    "max_seen_at": pl.Datetime("us", "UTC"),
    "basis_counts": pl.List(pl.Int32),
}
QUOTE_CAPTIONS = 8  # newest non-empty captions kept per creator
QUOTE_CAPTION_CHARS = 2000  # of each: matched whole, only the quote is shortened


def schema_hash(frame: pl.DataFrame) -> str:
    """Hash of column names and dtypes, in order: changes whenever the table's contract changes."""
    text = ";".join(f"{name}:{dtype}" for name, dtype in frame.schema.items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FeatureSet:
    """A loaded feature set. Matrices are row-aligned with ``creators``."""

    path: Path
    manifest: dict[str, Any]
    creators: pl.DataFrame
    terms: pl.DataFrame
    audience_geo: pl.DataFrame
    clusters: pl.DataFrame
    bio: np.ndarray
    content: np.ndarray
    audience: np.ndarray
    audience_dist: np.ndarray
    centroids: np.ndarray
    follower_keys: pl.DataFrame | None = None
    recent_captions: pl.DataFrame | None = None

    @property
    def version(self) -> str:
        return str(self.manifest["feature_version"])

    @property
    def feature_set_id(self) -> str:
        return str(self.manifest["feature_set_id"])

    @property
    def embedder_id(self) -> str:
        return str(self.manifest["embedder_id"])

    def row_of(self) -> dict[str, int]:
        """creator_id → row index."""
        return {cid: i for i, cid in enumerate(self.creators["creator_id"].to_list())}


def content_id(recipe_id: str, files: dict[str, str]) -> str:
    """The feature set id: a hash of what it was built from (``recipe_id``: input fingerprint, embedder, as-of,
    settings) and of what it holds (every file's sha256), so no file can change without changing the id."""
    text = json.dumps({"recipe": recipe_id, "files": files}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def loaded_files(follower_keys: bool, recent_captions: bool = False) -> list[str]:
    """The files :func:`load_feature_set` opens (relative paths); every one must be listed in the manifest."""
    names = [f"{name}.parquet" for name in TABLE_FILES] + [f"vectors/{name}.npy" for name in VECTOR_FILES]
    names += [f"{FOLLOWER_KEYS}.parquet"] if follower_keys else []
    return names + ([f"{RECENT_CAPTIONS}.parquet"] if recent_captions else [])


def read_manifest(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The checked manifest of the feature set at ``path`` and its ``files`` table; the id is recomputed from the
    content (a stated id that differs is refused). Every listed path is a plain relative path inside ``path``."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise InputError(f"{path}: not a feature set (no {MANIFEST}); build one with 'audiencefit features build'")
    try:
        manifest_file = contained_path(path, MANIFEST, where=str(path))
        manifest = json.loads(read_regular(manifest_file, shown=str(manifest_path), max_bytes=MAX_MANIFEST_BYTES))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise InputError(f"{manifest_path}: not a JSON object")
    version = str(manifest.get("feature_version"))
    if version != FEATURE_VERSION:
        raise InputError(
            f"{path}: feature version {version!r}, this code reads version {FEATURE_VERSION!r}; rebuild the features"
        )
    where = f"{manifest_path}, field 'files'"
    if "files" not in manifest:
        raise InputError(f"{where}: missing, so nothing can be verified; rebuild the features")
    files = checksum_table(manifest["files"], where=where)
    for rel in files:
        contained_path(path, rel, where=where)
    stated = manifest.get("feature_set_id")
    # Feature sets written before the recipe was stored apart: their stated id is the recipe's.
    recipe = manifest.get("recipe_id", stated)
    if not isinstance(recipe, str) or not recipe:
        raise InputError(f"{manifest_path}: no recipe_id (or feature_set_id); rebuild the features")
    computed = content_id(recipe, files)
    if "recipe_id" in manifest and stated != computed:
        raise InputError(
            f"{manifest_path}: states feature_set_id {str(stated)[:40]!r}, but its content hashes to {computed!r} "
            "(edited after it was built); rebuild the features"
        )
    manifest["feature_set_id"] = computed
    manifest["files"] = files
    return manifest, files


def load_feature_set(
    path: Path,
    *,
    verify_checksums: bool = True,
    mmap: bool = False,
    skip: frozenset[str] = frozenset(),
    table_cache: Path | None = None,
) -> FeatureSet:
    """Load and check a feature set; any missing file, version or checksum mismatch is an ``InputError``.

    Only files the manifest lists (with their sha256) are opened, each inside ``path`` (symlinks resolved);
    ``verify_checksums=False`` skips hashing them (the listing and the paths are still checked). ``skip`` names
    optional tables a caller does not use (``follower_keys``, ``recent_captions``: GBs at a million creators); they
    are still checksummed, not read, and are None on the result. ``table_cache``: the tables (but ``clusters``) are
    memory-mapped from Arrow copies kept there (``audiencefit.features.mapped_tables``; converted once, after the
    checksums matched), so that processes mapping the same feature set share one copy."""
    unknown = set(skip) - {FOLLOWER_KEYS, RECENT_CAPTIONS}
    if unknown:
        raise ValueError(f"only {FOLLOWER_KEYS} and {RECENT_CAPTIONS} can be skipped, not {sorted(unknown)}")
    manifest, files = read_manifest(path)
    where = f"{path / MANIFEST}, field 'files'"
    needed = loaded_files(
        follower_keys=f"{FOLLOWER_KEYS}.parquet" in files, recent_captions=f"{RECENT_CAPTIONS}.parquet" in files
    )
    unlisted = [rel for rel in needed if rel not in files]
    if unlisted:
        raise InputError(f"{where}: does not list {', '.join(unlisted)} (every file loaded must be listed)")
    resolved = {rel: contained_path(path, rel, where=where) for rel in files}
    problems = [f"{rel}: missing" for rel in sorted(files) if not resolved[rel].is_file()]
    if problems:
        raise InputError(f"{path}: feature set is damaged: " + "; ".join(problems))
    # Checksums are computed on a second core while the files are read (hashing releases the GIL); nothing read
    # is returned unless every checksum matches.
    with ThreadPoolExecutor(max_workers=1) as pool:
        digests = {rel: pool.submit(sha256_file, resolved[rel]) for rel in sorted(files)} if verify_checksums else {}
        mapped = (*MAPPED_TABLES, FOLLOWER_KEYS) if table_cache is not None else ()
        try:
            tables = {name: pl.read_parquet(resolved[f"{name}.parquet"]) for name in TABLE_FILES if name not in mapped}
            arrays = {
                name: np.load(resolved[f"vectors/{name}.npy"], allow_pickle=False, mmap_mode="r" if mmap else None)
                for name in VECTOR_FILES
            }
            keys_file = None if FOLLOWER_KEYS in skip else resolved.get(f"{FOLLOWER_KEYS}.parquet")
            follower_keys = pl.read_parquet(keys_file) if keys_file is not None and not mapped else None
            captions_file = None if RECENT_CAPTIONS in skip else resolved.get(f"{RECENT_CAPTIONS}.parquet")
            recent_captions = pl.read_parquet(captions_file) if captions_file is not None else None
            unreadable = None
        except Exception as exc:  # reported below, after the checksums that usually explain it
            unreadable = exc
        problems = [
            f"{rel}: checksum mismatch (file changed or corrupted)"
            for rel, digest in digests.items()
            if digest.result() != files[rel]
        ]
    if problems:
        raise InputError(f"{path}: feature set is damaged: " + "; ".join(problems))
    if unreadable is not None:
        raise InputError(f"{path}: feature set is unreadable: {unreadable}") from unreadable
    if table_cache is not None:
        # Only now: a copy is converted from a file whose checksum matched, so it is never named after
        # content it does not hold.
        try:
            for name in MAPPED_TABLES:
                rel = f"{name}.parquet"
                tables[name] = mapped_table(resolved[rel], files[rel], table_cache)
            if keys_file is not None:
                follower_keys = mapped_table(keys_file, files[f"{FOLLOWER_KEYS}.parquet"], table_cache)
        except Exception as exc:
            raise InputError(f"{path}: feature set is unreadable: {exc}") from exc
    n = tables["creators"].height
    for name in ("bio", "content", "audience", "audience_dist"):
        if arrays[name].shape[0] != n:
            raise InputError(f"{path}: vectors/{name}.npy has {arrays[name].shape[0]} rows, creators has {n}")
    return FeatureSet(
        path=path,
        manifest=manifest,
        creators=tables["creators"],
        terms=tables["terms"],
        audience_geo=tables["audience_geo"],
        clusters=tables["clusters"],
        bio=arrays["bio"],
        content=arrays["content"],
        audience=arrays["audience"],
        audience_dist=arrays["audience_dist"],
        centroids=arrays["centroids"],
        follower_keys=follower_keys,
        recent_captions=recent_captions,
    )
