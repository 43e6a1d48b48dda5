"""Asymmetric: stored texts through the aligned static model, queries through the ONNX transformer (int8).

The pipeline embeds millions of *stored* texts (creator bios, recent captions, follower profiles) and a handful
of *query* texts (segment and brand descriptions) per request. Stored texts are averaged into creator and audience
representations (a mean over recent captions, over a follower sample), where a bag-of-pieces vector loses little;
a query is one short text whose meaning hangs on every word. So the stored side goes through the static model,
mapped into MiniLM space by the affine map fitted on locally generated texts (``align.npy``, see
:func:`~audiencefit.features.embed_backends.build_static.build_alignment`), and the query side through MiniLM itself
(the fp32 ONNX export named first in the backend's ``depends`` is the map's target; queries go through the export
the ``query_model`` setting names, int8 by default: 2.2× less CPU per text, retrieval within a point). Both live
in MiniLM space, so a query compares directly with the stored vectors.

``embed`` is the stored-text side (what the feature build and its cache use, under this backend's id);
``query_embedder()`` returns the transformer, with its own id, so cached query vectors never mix with stored
ones. The transformer is loaded on the first query: a feature build never loads it. Needs onnxruntime,
tokenizers and numpy only, never torch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from audiencefit.features.embed_backends.artifacts import read_manifest
from audiencefit.features.embed_backends.onnx_minilm import OnnxMiniLMEmbedder
from audiencefit.features.embed_backends.static import (
    ALIGN_FILE,
    MAP_REVISION,
    StaticEmbedder,
    apply_linear_map,
    load_matrix,
)


class AlignedEmbedder:
    """Stored texts → static vectors mapped into MiniLM space; queries → ONNX MiniLM (loaded on first use)."""

    def __init__(
        self, artifact_dir: Path, static: StaticEmbedder, transformer: Callable[[], OnnxMiniLMEmbedder], dim: int
    ) -> None:
        manifest = read_manifest(artifact_dir)
        # The artifact's id plus the revision of the map's arithmetic: the stored vectors depend on both.
        self._id: str = f"{manifest['id']}+{MAP_REVISION}"
        self._affine = load_matrix(artifact_dir / ALIGN_FILE)
        if self._affine.shape != (static.dim + 1, dim):
            raise ValueError(f"{artifact_dir / ALIGN_FILE}: shape {self._affine.shape} does not fit the two models")
        self._static = static
        self._dim = dim
        self._make_transformer = transformer
        self._transformer: OnnxMiniLMEmbedder | None = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        """Backend + model + build digest of the stored-text side; the embedding cache keys on it."""
        return self._id

    @property
    def dim(self) -> int:
        """Vector dimension (MiniLM's, 384)."""
        return self._dim

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed prepared stored texts (bios, captions, follower profiles): float32 (n, dim), unit-norm rows."""
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return apply_linear_map(self._static.embed(texts), self._affine)

    def clear_cache(self) -> None:
        """Forget the static model's cached word pieces (benchmarks measure a cold start with it)."""
        self._static.clear_cache()

    def query_embedder(self) -> OnnxMiniLMEmbedder:
        """The transformer for query texts (segment and brand descriptions), loaded once on first use."""
        if self._transformer is None:
            with self._lock:
                if self._transformer is None:
                    self._transformer = self._make_transformer()
        return self._transformer
