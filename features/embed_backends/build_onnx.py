"""Builders of the ONNX MiniLM artifacts: export with ``torch.onnx.export``, fuse, and quantize to int8.

Build time only (imports torch and transformers); the runtime in :mod:`audiencefit.features.embed_backends.onnx_minilm`
needs only onnxruntime, tokenizers and numpy. sentence-transformers' own ONNX export fails on the packaged
model's directory, so the BertModel is exported directly and pooling is done in numpy at run time.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audiencefit.features.embed_backends.artifacts import BackendSpec, set_offline_env, source_model_dir
from audiencefit.features.embed_backends.build_report import Report, silence_library_bars

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
INFO_FILE = "embedder.json"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    """Raise the root logger to WARNING for a while: onnxruntime's quantizer logs a line per tensor on it."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def minilm_info(model_dir: Path) -> dict[str, Any]:
    """Dimension, attention heads and max sequence length of the packaged model, from its config files."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    st_config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError(f"{model_dir}: expected mean pooling, got {pooling}")
    return {
        "dim": int(config["hidden_size"]),
        "num_heads": int(config["num_attention_heads"]),
        "max_seq_length": int(st_config["max_seq_length"]),
        "pooling": "mean",
        "normalize": True,
    }


def _export(model_dir: Path, out: Path, opset: int, attention: str) -> None:
    import torch
    from transformers import BertModel

    silence_library_bars()  # "Loading weights" bar
    model = BertModel.from_pretrained(str(model_dir), attn_implementation=attention)
    model.train(False)  # inference mode: no dropout

    class LastHidden(torch.nn.Module):
        """Keyword call and a plain tensor out: BertModel.forward's positional order changed across versions."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            hidden: torch.Tensor = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            return hidden

    # Two rows of different lengths so nothing in the trace specialises on "no padding".
    ids = torch.tensor([[101, 2770, 2006, 102], [101, 7592, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    axes = {name: {0: "batch", 1: "seq"} for name in (*_INPUTS, "last_hidden_state")}
    with torch.no_grad():
        torch.onnx.export(
            LastHidden(model),
            (ids, mask, torch.zeros_like(ids)),
            str(out),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter handles BertModel's dynamic shapes; dynamo needs onnxscript
        )


def _copy_tokenizer(model_dir: Path, out_dir: Path) -> None:
    shutil.copyfile(model_dir / "tokenizer.json", out_dir / TOKENIZER_FILE)


# Shares of the fp32 build's time, for its progress bar: importing torch, tracing the export, fusing, saving.
_FP32_STEPS = {"import": 25, "export": 50, "fuse": 20, "save": 5}


def build_onnx_fp32(spec: BackendSpec, out_dir: Path, deps: Mapping[str, Path], report: Report) -> dict[str, Any]:
    """Export the packaged BertModel to ONNX (dynamic batch and sequence axes) and fuse it for onnxruntime."""
    del deps
    total = sum(_FP32_STEPS.values())
    report(0, total)
    set_offline_env()
    import torch  # noqa: F401  (the slow import, timed as a step of its own)
    from onnxruntime.transformers import optimizer

    model_dir = source_model_dir()
    info = minilm_info(model_dir)
    report(_FP32_STEPS["import"], total)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        _export(model_dir, raw, int(spec.params["opset"] or 17), str(spec.params["attention"]))
        report(total - _FP32_STEPS["fuse"] - _FP32_STEPS["save"], total)
        if spec.params.get("fusion") == "bert":
            for name in ("fusion_base", "onnx_model", "onnx_model_bert"):  # a line per fusion at INFO
                logging.getLogger(name).setLevel(logging.WARNING)
            fused = optimizer.optimize_model(
                str(raw),
                model_type="bert",
                num_heads=info["num_heads"],
                hidden_size=info["dim"],
                opt_level=1,
                use_gpu=False,
            )
            info["fused_ops"] = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
            report(total - _FP32_STEPS["save"], total)
            fused.save_model_to_file(str(out_dir / MODEL_FILE))
        else:
            shutil.copyfile(raw, out_dir / MODEL_FILE)
    _copy_tokenizer(model_dir, out_dir)
    (out_dir / INFO_FILE).write_text(json.dumps(info, sort_keys=True), encoding="utf-8")
    report(total, total)
    return info


def build_onnx_int8(spec: BackendSpec, out_dir: Path, deps: Mapping[str, Path], report: Report) -> dict[str, Any]:
    """Dynamic int8 quantization (weights int8, activations quantized per batch) of the fp32 ONNX artifact."""
    report(0, 1)
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    (fp32_dir,) = deps.values()
    info: dict[str, Any] = json.loads((fp32_dir / INFO_FILE).read_text(encoding="utf-8"))
    with quiet_root_logger():
        quantize_dynamic(
            str(fp32_dir / MODEL_FILE),
            str(out_dir / MODEL_FILE),
            weight_type=QuantType[str(spec.params["weight_type"])],
            per_channel=bool(spec.params["per_channel"]),
            reduce_range=bool(spec.params["reduce_range"]),
            # The fused graph has contrib ops shape inference cannot type; their outputs are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    shutil.copyfile(fp32_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    (out_dir / INFO_FILE).write_text(json.dumps(info, sort_keys=True), encoding="utf-8")
    report(1, 1)
    return info
