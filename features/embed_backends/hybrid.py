"""Hybrid: the int8 transformer for most texts, the aligned static model for long ones.

A transformer's cost grows with the number of word pieces, so the few long captions take a large share of the
time; a bag-of-pieces average of a long text loses less than it does for a short one, whose meaning hangs on word
order. Long texts (more than ``long_tokens`` pieces) therefore go to the static model, whose vectors are mapped
into MiniLM space by an affine map fitted on locally generated texts (``align.npy``), so both kinds of vector
can be compared with each other. Needs onnxruntime, tokenizers and numpy only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from audiencefit.features.embed_backends.artifacts import read_manifest
from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder
from audiencefit.features.embed_backends.static import (
    ALIGN_FILE,
    INFO_FILE,
    MAP_REVISION,
    StaticEmbedder,
    apply_linear_map,
    load_matrix,
)


class HybridEmbedder:
    """Routes each text by its word-piece count: short → int8 MiniLM, long → static vectors mapped to MiniLM space."""

    def __init__(self, artifact_dir: Path, transformer: OnnxMiniLMEmbedder, static: StaticEmbedder) -> None:
        manifest = read_manifest(artifact_dir)
        info = json.loads((artifact_dir / INFO_FILE).read_text(encoding="utf-8"))
        # The artifact's id plus the revision of the map's arithmetic: the stored vectors depend on both.
        self._id: str = f"{manifest['id']}+{MAP_REVISION}"
        self.long_tokens = int(info["long_tokens"])
        self._affine = load_matrix(artifact_dir / ALIGN_FILE)
        if self._affine.shape != (static.dim + 1, transformer.dim):
            raise ValueError(f"{artifact_dir / ALIGN_FILE}: shape {self._affine.shape} does not fit the two models")
        self._transformer = transformer
        self._static = static

    @property
    def id(self) -> str:
        """Backend + model + build digest; the embedding cache keys on it."""
        return self._id

    @property
    def dim(self) -> int:
        """Vector dimension (MiniLM's, 384)."""
        return self._transformer.dim

    def _is_long(self, encodings: Sequence[Any]) -> npt.NDArray[np.bool_]:
        # len - 2: [CLS] and [SEP] are not the text's own pieces.
        return np.fromiter((len(e.ids) - 2 > self.long_tokens for e in encodings), dtype=bool, count=len(encodings))

    def is_long(self, texts: Sequence[str]) -> npt.NDArray[np.bool_]:
        """Which texts go to the static model."""
        return self._is_long(self._transformer.tokenize(texts))

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed prepared texts: float32 (n, dim), unit-norm rows, all in MiniLM space."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._transformer.tokenize(texts)
        long = self._is_long(encodings)
        short_rows = np.flatnonzero(~long)
        long_rows = np.flatnonzero(long)
        if short_rows.size:
            out[short_rows] = self._transformer.embed_encodings([encodings[i] for i in short_rows])
        if long_rows.size:
            static = self._static.embed([texts[int(i)] for i in long_rows])
            out[long_rows] = apply_linear_map(static, self._affine)
        return out
