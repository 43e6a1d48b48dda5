"""The tests' embedding backend: a fast deterministic stand-in for the transformer, bag of hashed words.

Needs numpy and audiencefit only (no pytest), so a serving install's processes can register it too (tests load
this file by path in their sitecustomize: tests/e2e/serve_process.py, tests/e2e/test_serve_install.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np


class HashingEmbedder:
    """A fast deterministic stand-in for the transformer: bag of hashed words, L2-normalised.

    Used where a test checks pipeline logic (caching, point in time, atomic writes), not embedding quality.
    Counts how many texts it embedded so tests can assert cache hits.
    """

    id = "test-hashing/v1"
    backend = "test-hashing"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0
        self.texts_embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def register() -> None:
    """Make the backend ``test-hashing`` available to ``audiencefit.features.embed.get_embedder``."""
    from audiencefit.features.embed import register_embedder

    register_embedder(HashingEmbedder.backend, HashingEmbedder)
