"""Write the student as ONE self-contained ``.onnx`` file: graph, weights, vocabulary, labels and
metadata (``metadata_props``), so a teacher can download a single file for offline scoring.

The graph is built node by node rather than traced: it uses the standard ONNX ``LSTM`` operator
(one fused kernel in ONNX Runtime) and computes the lengths from the padding itself, so its only
input is ``input_ids`` ``[batch, tokens]`` (int64, right-padded with 0) and its output is
``probabilities`` ``[batch, labels]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ml_core.distill.scorer import METADATA_KEY
from ml_core.distill.student import PAD_PENALTY, StudentModel
from ml_core.distill.vocabulary import PAD_ID, Vocabulary

OPSET = 17
INPUT_NAME = "input_ids"
OUTPUT_NAME = "probabilities"


def _gates_to_onnx(weight: np.ndarray, units: int) -> np.ndarray:
    # torch stacks gates as input, forget, cell, output; ONNX as input, output, forget, cell
    i, f, g, o = (weight[k * units : (k + 1) * units] for k in range(4))
    return np.concatenate([i, o, f, g], axis=0)


def _lstm_tensors(model: StudentModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lstm = model.lstm
    units = lstm.hidden_size
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in lstm.state_dict().items()}
    weights, recurrences, biases = [], [], []
    for suffix in ("", "_reverse"):
        weights.append(_gates_to_onnx(state[f"weight_ih_l0{suffix}"], units))
        recurrences.append(_gates_to_onnx(state[f"weight_hh_l0{suffix}"], units))
        biases.append(
            np.concatenate(
                [
                    _gates_to_onnx(state[f"bias_ih_l0{suffix}"], units),
                    _gates_to_onnx(state[f"bias_hh_l0{suffix}"], units),
                ]
            )
        )
    return np.stack(weights), np.stack(recurrences), np.stack(biases)


def build_onnx_model(model: StudentModel, metadata: Mapping[str, object]) -> onnx.ModelProto:
    """The ONNX model of ``model`` (in eval semantics: no dropout) with ``metadata`` embedded."""
    units = model.lstm.hidden_size
    w, r, b = _lstm_tensors(model)
    f32 = np.float32

    def param(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(value), name)

    initializers = [
        param("embedding", model.embedding.weight.detach().cpu().numpy().astype(f32)),
        param("lstm_W", w),
        param("lstm_R", r),
        param("lstm_B", b),
        param("dense_W", model.dense.weight.detach().cpu().numpy().astype(f32)),
        param("dense_b", model.dense.bias.detach().cpu().numpy().astype(f32)),
        param("out_W", model.output.weight.detach().cpu().numpy().astype(f32)),
        param("out_b", model.output.bias.detach().cpu().numpy().astype(f32)),
        param("pad_id", np.array(PAD_ID, dtype=np.int64)),
        param("one", np.array(1.0, dtype=f32)),
        param("penalty", np.array(PAD_PENALTY, dtype=f32)),
        param("axis_tokens", np.array([1], dtype=np.int64)),
        param("mask_axes", np.array([1, 3], dtype=np.int64)),
        param("pooled_shape", np.array([0, 2 * units], dtype=np.int64)),
    ]
    nodes = [
        # lengths from the padding: the caller only passes token ids
        helper.make_node("Equal", [INPUT_NAME, "pad_id"], ["is_pad"]),
        helper.make_node("Not", ["is_pad"], ["is_token"]),
        helper.make_node("Cast", ["is_token"], ["mask"], to=TensorProto.FLOAT),  # [B, T]
        helper.make_node("ReduceSum", ["mask", "axis_tokens"], ["lengths_f"], keepdims=0),
        helper.make_node("Cast", ["lengths_f"], ["lengths"], to=TensorProto.INT32),
        helper.make_node("Gather", ["embedding", INPUT_NAME], ["embedded"]),  # [B, T, E]
        helper.make_node("Transpose", ["embedded"], ["steps_first"], perm=[1, 0, 2]),  # [T, B, E]
        helper.make_node(
            "LSTM",
            ["steps_first", "lstm_W", "lstm_R", "lstm_B", "lengths"],
            ["states"],  # [T, 2, B, H], zero after each row's length
            hidden_size=units,
            direction="bidirectional",
        ),
        # padded steps pushed below any real state, then the max over steps
        helper.make_node("Sub", ["one", "mask"], ["padding"]),
        helper.make_node("Transpose", ["padding"], ["padding_tb"], perm=[1, 0]),  # [T, B]
        helper.make_node("Unsqueeze", ["padding_tb", "mask_axes"], ["padding_4d"]),  # [T, 1, B, 1]
        helper.make_node("Mul", ["padding_4d", "penalty"], ["penalty_4d"]),
        helper.make_node("Sub", ["states", "penalty_4d"], ["masked_states"]),
        helper.make_node(
            "ReduceMax", ["masked_states"], ["pooled_3d"], axes=[0], keepdims=0
        ),  # [2, B, H]
        helper.make_node("Transpose", ["pooled_3d"], ["pooled_b"], perm=[1, 0, 2]),  # [B, 2, H]
        helper.make_node(
            "Reshape", ["pooled_b", "pooled_shape"], ["pooled"]
        ),  # [B, 2H], forward first
        helper.make_node("Gemm", ["pooled", "dense_W", "dense_b"], ["dense"], transB=1),
        helper.make_node("Relu", ["dense"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "out_W", "out_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "scorebridge_distilled_student",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.INT64, ["batch", "tokens"])],
        [
            helper.make_tensor_value_info(
                OUTPUT_NAME, TensorProto.FLOAT, ["batch", model.num_labels]
            )
        ],
        initializers,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="scorebridge.ml_core.distill",
    )
    # ONNX Runtime 1.x reads IR version 8+ models; pin it so older runtimes on laptops load the file
    onnx_model.ir_version = 8
    helper.set_model_props(onnx_model, {METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    onnx.checker.check_model(onnx_model)
    return onnx_model


def export_onnx(
    model: StudentModel,
    vocabulary: Vocabulary,
    labels: tuple[int, ...],
    path: Path,
    **metadata: object,
) -> int:
    """Write ``model`` with its vocabulary, score ``labels`` and ``metadata`` to ``path``; return bytes."""
    if len(labels) != model.num_labels:
        raise ValueError(f"{len(labels)} labels for a student with {model.num_labels} classes")
    payload = {
        "kind": "distilled",
        **metadata,
        "labels": list(labels),
        "vocabulary": vocabulary.to_dict(),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_onnx_model(model, payload).SerializeToString())
    return path.stat().st_size
