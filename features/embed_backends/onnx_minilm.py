"""all-MiniLM-L6-v2 on onnxruntime (fp32 or int8), with the ``tokenizers`` fast tokenizer and numpy pooling.

Loading and embedding import onnxruntime, tokenizers and numpy only, never torch. Texts are tokenized with
truncation at the model's ``max_seq_length`` (256 word pieces, as sentence-transformers does), sorted by length so
a batch pads little, run through the model, mean-pooled over real tokens and L2-normalised.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from audiencefit.features.embed_backends.artifacts import read_manifest

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
INFO_FILE = "embedder.json"


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_minilm_tokenizer(path: Path, max_seq_length: int) -> Any:
    """The MiniLM WordPiece tokenizer from ``tokenizer.json``, truncating at ``max_seq_length``, without padding.

    The packaged ``tokenizer.json`` pads and truncates to 128; sentence-transformers overrides that with 256,
    and so does this.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    return tokenizer


def unit_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit.astype(np.float32, copy=False)


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2 from an ONNX artifact built by
    :func:`audiencefit.features.embed_backends.artifacts.ensure_artifacts`."""

    def __init__(
        self, artifact_dir: Path, *, batch_size: int = 64, threads: int | None = None, spin: bool = False
    ) -> None:
        import onnxruntime as ort

        started = time.perf_counter()
        manifest = read_manifest(artifact_dir)
        info = json.loads((artifact_dir / INFO_FILE).read_text(encoding="utf-8"))
        self._id: str = manifest["id"]
        self._dim = int(info["dim"])
        self.max_seq_length = int(info["max_seq_length"])
        self.batch_size = batch_size
        self._tokenizer = load_minilm_tokenizer(artifact_dir / TOKENIZER_FILE, self.max_seq_length)

        options = ort.SessionOptions()
        # One pool of as many threads as cores; a second (inter-op) pool would only compete for the same cores.
        options.intra_op_num_threads = threads or available_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initializers are noise
        # Spinning threads wait hot between ops: a little faster on idle cores, much slower when other processes
        # share them (measured here: 354 vs 309 texts/s on 2 busy cores), so it is off unless asked for.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self._session = ort.InferenceSession(
            str(artifact_dir / MODEL_FILE), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        logger.info(
            "onnx embedder loaded", extra={"embedder": self._id, "seconds": round(time.perf_counter() - started, 2)}
        )

    @property
    def id(self) -> str:
        """Backend + model + build digest; the embedding cache keys on it."""
        return self._id

    @property
    def dim(self) -> int:
        """Vector dimension (384)."""
        return self._dim

    def tokenize(self, texts: Sequence[str]) -> list[Any]:
        """``tokenizers.Encoding`` per text, with [CLS]/[SEP], truncated at ``max_seq_length``."""
        return list(self._tokenizer.encode_batch(list(texts)))

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed prepared texts: float32 (n, dim), unit-norm rows."""
        return self.embed_encodings(self.tokenize(texts))

    def embed_encodings(self, encodings: Sequence[Any]) -> npt.NDArray[np.float32]:
        """Embed already tokenized texts (from :meth:`tokenize`)."""
        return unit_rows(self.mean_hidden(encodings))

    def mean_hidden(
        self, encodings: Sequence[Any], report: Callable[[int], None] | None = None
    ) -> npt.NDArray[np.float32]:
        """The last hidden state averaged over each sequence's tokens, not normalised: float32 (n, dim).

        ``encodings`` are anything with ``.ids`` ([CLS] … [SEP] included), e.g. from :meth:`tokenize`;
        ``report(rows done)`` is called after every batch.
        """
        n = len(encodings)
        out = np.zeros((n, self._dim), dtype=np.float32)
        if n == 0:
            return out
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=n)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, n, self.batch_size):
            rows = order[start : start + self.batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            for r, j in enumerate(rows):
                ids[r, : lengths[j]] = encodings[j].ids
            mask = (np.arange(width)[None, :] < lengths[rows][:, None]).astype(np.int64)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(["last_hidden_state"], {k: v for k, v in feed.items() if k in self._inputs})[0]
            summed = np.einsum("bld,bl->bd", hidden, mask.astype(np.float32))
            out[rows] = summed / lengths[rows][:, None].astype(np.float32)
            if report is not None:
                report(min(start + self.batch_size, n))
        return out
