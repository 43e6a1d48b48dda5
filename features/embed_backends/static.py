"""A static embedding model distilled from the packaged MiniLM with model2vec: a table lookup and a mean.

Each word piece has one vector (MiniLM's output for that piece alone, SIF-weighted by frequency rank); a text's
vector is the normalised sum of its pieces' vectors. No attention, so no context: "not good" is "not" + "good".
Loading and embedding need only tokenizers and numpy (vectors are a ``.npy`` read without pickle), never torch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from features.embed_backends.artifacts import read_manifest
from features.embed_backends.onnx_minilm import unit_rows

logger = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npy"
TOKENIZER_FILE = "tokenizer.json"
INFO_FILE = "embedder.json"
ALIGN_FILE = "align.npy"


def load_matrix(path: Path) -> npt.NDArray[np.float32]:
    """A float32 matrix from an ``.npy`` file, refusing pickled content."""
    matrix: npt.NDArray[np.float32] = np.load(path, allow_pickle=False)
    if matrix.ndim != 2 or matrix.dtype != np.float32:
        raise ValueError(f"{path}: expected a 2-d float32 matrix, got {matrix.dtype} {matrix.shape}")
    return matrix


def fit_linear_map(
    source: npt.NDArray[np.float32], target: npt.NDArray[np.float32], ridge: float
) -> npt.NDArray[np.float32]:
    """Affine map from ``source`` rows to ``target`` rows by ridge least squares; last row of the result is the bias."""
    x = np.hstack([source, np.ones((len(source), 1), dtype=source.dtype)]).astype(np.float64)
    penalty = ridge * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    return np.linalg.solve(x.T @ x + penalty, x.T @ target.astype(np.float64)).astype(np.float32)


def apply_linear_map(vectors: npt.NDArray[np.float32], affine: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``vectors`` mapped by an affine map from :func:`fit_linear_map`, rows re-normalised."""
    return unit_rows((vectors @ affine[:-1] + affine[-1]).astype(np.float32))


class StaticEmbedder:
    """Static word-piece vectors from an artifact built by :func:`~features.embed_backends.ensure_artifacts`."""

    def __init__(self, artifact_dir: Path) -> None:
        from tokenizers import Tokenizer

        started = time.perf_counter()
        manifest = read_manifest(artifact_dir)
        info = json.loads((artifact_dir / INFO_FILE).read_text(encoding="utf-8"))
        self._id: str = manifest["id"]
        self._vectors = load_matrix(artifact_dir / VECTORS_FILE)
        self._dim = int(self._vectors.shape[1])
        self._tokenizer: Any = Tokenizer.from_file(str(artifact_dir / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        # Read no more than MiniLM reads, so long texts are compared on the same words.
        self._tokenizer.enable_truncation(max_length=int(info["max_tokens"]))
        unk = self._tokenizer.token_to_id(str(info["unk_token"]))
        self._unk = -1 if unk is None else int(unk)
        # A text with no known word piece gets the [UNK] piece's vector, as MiniLM sees such a text.
        fallback = self._vectors[self._unk] if self._unk >= 0 else self._vectors.mean(axis=0)
        self._fallback = unit_rows(fallback[None, :].astype(np.float32))[0]
        logger.info(
            "static embedder loaded",
            extra={"embedder": self._id, "seconds": round(time.perf_counter() - started, 2)},
        )

    @property
    def id(self) -> str:
        """Backend + model + build digest; the embedding cache keys on it."""
        return self._id

    @property
    def dim(self) -> int:
        """Vector dimension (384 without PCA)."""
        return self._dim

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed prepared texts: float32 (n, dim), unit-norm rows."""
        n = len(texts)
        out = np.zeros((n, self._dim), dtype=np.float32)
        if n == 0:
            return out
        pieces = [e.ids for e in self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]
        counts = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=n)
        flat = np.fromiter(chain.from_iterable(pieces), dtype=np.int64, count=int(counts.sum()))
        owner = np.repeat(np.arange(n), counts)
        known = flat != self._unk  # unknown pieces carry no meaning; model2vec drops them too
        flat, owner = flat[known], owner[known]
        counts = np.bincount(owner, minlength=n)
        has = counts > 0
        if flat.size:
            starts = np.cumsum(counts) - counts
            out[has] = np.add.reduceat(self._vectors[flat], starts[has], axis=0)
        out[~has] = self._fallback
        return unit_rows(out)
