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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiencefit.features.embed_backends.artifacts import BackendSpec, set_offline_env, source_model_dir
from audiencefit.features.embed_backends.build_onnx import minilm_info
from audiencefit.features.embed_backends.build_report import Report, silence_library_bars
from audiencefit.features.embed_backends.static import (
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


def build_static(spec: BackendSpec, out_dir: Path, deps: Mapping[str, Path], report: Report) -> dict[str, Any]:
    """Distill word-piece vectors from MiniLM as model2vec does, with the ONNX fp32 model named in ``depends``.

    model2vec's recipe (``distill_from_model``): the vocabulary less the removed pieces, each piece run alone as
    ``[CLS] piece [SEP]``, its output averaged over those three positions, PCA (optional), then SIF weights by
    vocabulary rank; the tokenizer is model2vec's own rewrite of MiniLM's (post-processor off, pieces removed,
    ids renumbered). Only the forward passes differ: onnxruntime runs them on every core in batches of
    :data:`PIECE_BATCH` instead of torch in batches of 256 (the vectors agree with torch's to float32 rounding).
    """
    set_offline_env()
    import re

    from model2vec.distill.inference import apply_pca, compute_weights
    from model2vec.tokenizer import clean_and_create_vocabulary, turn_tokens_into_ids
    from skeletoken import TokenizerModel
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder

    silence_library_bars()
    model_dir = source_model_dir()
    minilm = minilm_info(model_dir)
    (onnx_dir,) = deps.values()
    pca_dims = spec.params.get("pca_dims")
    sif = spec.params.get("sif_coefficient")
    vocab_limit = spec.params.get("vocab_limit")

    hf_tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
    original = TokenizerModel.from_transformers_tokenizer(hf_tokenizer).prune_added_tokens()
    tokenizer_model = original.deep_copy()
    if tokenizer_model.adds_prefix_space is not None:  # as distill_from_model does
        tokenizer_model.adds_prefix_space = True
    remove = re.compile(token_remove_pattern(model_dir, None if vocab_limit is None else int(vocab_limit)))
    tokenizer_model = clean_and_create_vocabulary(tokenizer_model, [], token_remove_regex=remove)
    pieces = tokenizer_model.sorted_vocabulary
    if not pieces:
        raise ValueError(f"{spec.key}: the vocabulary is empty after removing {remove.pattern!r}")
    # skeletoken renumbers ids (model2vec then reorders torch's embedding matrix to match); the ONNX graph keeps
    # MiniLM's numbering, so each id goes back through its token string to MiniLM's vocabulary.
    renumbered = original.to_tokenizer()
    minilm_ids = Tokenizer.from_file(str(model_dir / "tokenizer.json")).get_vocab(with_added_tokens=True)
    sequences = [
        _Ids([minilm_ids[str(renumbered.id_to_token(i))] for i in ids])
        for ids in turn_tokens_into_ids(pieces, original)
    ]

    onnx = OnnxMiniLMEmbedder(onnx_dir, batch_size=PIECE_BATCH)
    report(0, len(sequences))
    embeddings = np.nan_to_num(onnx.mean_hidden(sequences, lambda done: report(done, len(sequences))))
    weights = compute_weights(len(embeddings), sif_coefficient=None if sif is None else float(sif))
    embeddings = apply_pca(embeddings, None if pca_dims is None else int(pca_dims)) * weights[:, None]
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    np.save(out_dir / VECTORS_FILE, vectors, allow_pickle=False)
    tokenizer_model.to_tokenizer().save(str(out_dir / TOKENIZER_FILE))
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


PIECE_BATCH = 1024
ALIGN_BATCH = 128
"""Corpus texts per onnxruntime call when fitting the alignment map (sorted by length, so little padding)."""
"""Word pieces per onnxruntime call when distilling (three tokens each: large batches keep both cores busy)."""


@dataclass(frozen=True)
class _Ids:
    """A token id sequence shaped like a ``tokenizers.Encoding`` for :meth:`OnnxMiniLMEmbedder.mean_hidden`."""

    ids: list[int]


def build_alignment(spec: BackendSpec, out_dir: Path, deps: Mapping[str, Path], report: Report) -> dict[str, Any]:
    """Fit the affine map from static space to MiniLM space on locally generated texts; save it as ``align.npy``.

    Targets come from the ONNX model named first in ``depends`` — the transformer the hybrid uses for its other
    texts and the aligned backend for queries — so both halves live in the same space.
    """
    from audiencefit.features.embed_backends.corpus import corpus_sha256, social_texts
    from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder, unit_rows
    from audiencefit.features.embed_backends.static import StaticEmbedder

    size, seed = int(spec.params["corpus_size"] or 0), int(spec.params["corpus_seed"] or 0)
    # Units of progress: generating the corpus costs about as much as embedding a tenth of it.
    total = size + size // 10
    report(0, total)
    texts = social_texts(size, seed)
    report(size // 10, total)
    transformer_key, static_key = spec.depends
    onnx = OnnxMiniLMEmbedder(deps[transformer_key], batch_size=ALIGN_BATCH)
    static = StaticEmbedder(deps[static_key])
    encodings = onnx.tokenize(texts)
    target = unit_rows(onnx.mean_hidden(encodings, lambda done: report(size // 10 + done, total)))
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
