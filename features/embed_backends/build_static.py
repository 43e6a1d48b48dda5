"""Builders of the static model (model2vec distillation of the packaged MiniLM) and the hybrid's alignment map.

Build time only: imports torch, transformers and model2vec. Distillation runs MiniLM once per word piece of its
vocabulary (about 30k short forward passes: 15 s to a few minutes on 2 busy cores); it reads the packaged model
directory only, so nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from features.embed_backends.artifacts import BackendSpec, set_offline_env, source_model_dir
from features.embed_backends.build_onnx import minilm_info
from features.embed_backends.static import (
    ALIGN_FILE,
    INFO_FILE,
    TOKENIZER_FILE,
    VECTORS_FILE,
    apply_linear_map,
    fit_linear_map,
)

logger = logging.getLogger(__name__)

_UNUSED = r"\[unused\d+\]"  # model2vec's default: BERT's placeholder pieces carry no meaning


def token_remove_pattern(model_dir: Path, vocab_limit: int | None) -> str:
    """The regex of word pieces model2vec leaves out: the ``[unusedN]`` placeholders and, with ``vocab_limit``,
    every longer piece after the first ``vocab_limit`` in ``vocab.txt`` order (roughly by frequency).

    Special tokens and single characters are always kept, so every word still tokenizes. A limited vocabulary
    distills in seconds instead of minutes: for tests, not for production.
    """
    if vocab_limit is None:
        return _UNUSED
    pieces = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    special = {p for p in pieces if p.startswith("[") and p.endswith("]") and not p.startswith("[unused")}
    short = {p for p in pieces if len(p.removeprefix("##")) == 1}
    longer = [p for p in pieces if p not in special and p not in short and not p.startswith("[unused")]
    kept = "|".join(re.escape(p) for p in sorted(special | short | set(longer[:vocab_limit])))
    return f"{_UNUSED}|(?!(?:{kept})$)"


def build_static(spec: BackendSpec, out_dir: Path, deps: Mapping[str, Path]) -> dict[str, Any]:
    """Distill word-piece vectors from the packaged MiniLM with ``model2vec.distill`` (float32, PCA optional)."""
    del deps
    set_offline_env()
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    model_dir = source_model_dir()
    minilm = minilm_info(model_dir)
    model = AutoModel.from_pretrained(str(model_dir))
    tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
    pca_dims = spec.params.get("pca_dims")
    sif = spec.params.get("sif_coefficient")
    vocab_limit = spec.params.get("vocab_limit")
    # distill_from_model, not distill(name): given objects, it never asks the Hub for the model card.
    static = distill_from_model(
        model=model,
        tokenizer=tokenizer,
        pca_dims=None if pca_dims is None else int(pca_dims),
        sif_coefficient=None if sif is None else float(sif),
        token_remove_pattern=token_remove_pattern(model_dir, None if vocab_limit is None else int(vocab_limit)),
        quantize_to="float32",
        device="cpu",
    )
    vectors = np.ascontiguousarray(np.asarray(static.embedding, dtype=np.float32))
    np.save(out_dir / VECTORS_FILE, vectors, allow_pickle=False)
    static.tokenizer.save(str(out_dir / TOKENIZER_FILE))
    info = {
        "dim": int(vectors.shape[1]),
        "vocab_size": int(vectors.shape[0]),
        "max_tokens": minilm["max_seq_length"] - 2,  # MiniLM's limit less [CLS] and [SEP]
        "unk_token": "[UNK]",
        "pooling": "mean",
        "normalize": True,
    }
    (out_dir / INFO_FILE).write_text(json.dumps(info, sort_keys=True), encoding="utf-8")
    return info


def build_alignment(spec: BackendSpec, out_dir: Path, deps: Mapping[str, Path]) -> dict[str, Any]:
    """Fit the affine map from static space to MiniLM space on locally generated texts; save it as ``align.npy``.

    Targets come from the ONNX model named first in ``depends`` — the transformer the hybrid uses for its other
    texts and the aligned backend for queries — so both halves live in the same space.
    """
    from features.embed_backends.corpus import corpus_sha256, social_texts
    from features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder
    from features.embed_backends.static import StaticEmbedder

    size, seed = int(spec.params["corpus_size"] or 0), int(spec.params["corpus_seed"] or 0)
    texts = social_texts(size, seed)
    transformer_key, static_key = spec.depends
    onnx = OnnxMiniLMEmbedder(deps[transformer_key])
    static = StaticEmbedder(deps[static_key])
    target = onnx.embed(texts)
    source = static.embed(texts)
    affine = fit_linear_map(source, target, float(spec.params["ridge"] or 0.0))
    np.save(out_dir / ALIGN_FILE, affine, allow_pickle=False)
    train_cosine = float(np.mean(np.sum(apply_linear_map(source, affine) * target, axis=1)))
    info = {
        "dim": onnx.dim,
        "long_tokens": int(spec.params.get("long_tokens") or 0),
        "corpus_sha256": corpus_sha256(size, seed),
        "train_mean_cosine": round(train_cosine, 4),
    }
    (out_dir / INFO_FILE).write_text(json.dumps(info, sort_keys=True), encoding="utf-8")
    return info
