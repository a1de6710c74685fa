"""The matching index and one batch's processing, with an in-process fake of the vision stage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import cv2
import numpy as np

from chalicelib.ingest.batch_format import Frame
from chalicelib.ingest.process import process_frames
from chalicelib.matching.index import ExactIndex
from chalicelib.settings import Settings
from chalicelib.vision.pipeline import FaceObservation, FrameAnalysis
from chalicelib.vision.types import Detection

T = datetime(2026, 11, 26, tzinfo=UTC)


def _unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, np.float32)
    return a / np.linalg.norm(a)


def test_exact_index_top_k_and_empty() -> None:
    idx = ExactIndex(
        ["a", "b", "c"], np.stack([_unit([1, 0, 0]), _unit([0, 1, 0]), _unit([1, 1, 0])]), "m"
    )
    res = idx.search(_unit([1, 0.1, 0]), k=2)[0]
    assert [c.subject_id for c in res] == ["a", "c"]
    assert res[0].score > res[1].score
    assert ExactIndex([], np.zeros((0, 3)), "m").search(_unit([1, 0, 0])) == [[]]


@dataclass
class FakePipeline:
    """Every frame's pixel value picks which embeddings it 'contains'."""

    per_frame: dict[int, list[np.ndarray]]
    model_id: str = "m"

    def analyze(self, image: np.ndarray) -> FrameAnalysis:
        faces = []
        for e in self.per_frame.get(int(image[0, 0, 0]), []):
            det = Detection(
                np.array([2, 2, 10, 10], np.float32), 0.99, np.zeros((5, 2), np.float32)
            )
            faces.append(FaceObservation(det, np.zeros((112, 112, 3), np.uint8), e))
        return FrameAnalysis(faces, {"too_small": 1}, {"detect": 1.0, "align": 0.1, "embed": 2.0})


def _frame(i: int, value: int) -> Frame:
    ok, buf = cv2.imencode(
        ".jpg", np.full((16, 16, 3), value, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100]
    )
    return Frame(i, f"{i:06d}.jpg", T, buf.tobytes())


def test_one_match_per_subject_per_batch_best_face_kept() -> None:
    alice, bob = _unit([1, 0, 0, 0]), _unit([0, 1, 0, 0])
    stranger = _unit([0, 0, 1, 0])
    idx = ExactIndex(["alice", "bob"], np.stack([alice, bob]), "m")
    near = _unit([1, 0.3, 0, 0])  # alice, less clearly
    pipe = FakePipeline({0: [near, stranger], 100: [alice], 200: [stranger]})
    frames = [
        _frame(0, 0),
        _frame(1, 100),
        _frame(2, 200),
        Frame(3, "000003.jpg", T, b"", None),
        Frame(4, "x.jpg", T, None, "missing"),
    ]
    out = process_frames(frames, pipe, idx, threshold=0.5, max_pixels=10_000)  # type: ignore[arg-type]
    assert [m.subject_id for m in out.matches] == ["alice"]
    assert out.matches[0].frame_index == 1  # the clearest view, not the first
    assert out.matches[0].score > 0.99
    assert out.frames_processed == 3
    assert dict(out.frames_skipped) == {"empty": 1, "missing": 1}
    assert out.faces_seen == 4 + 3  # passing faces + gated-out ones
    assert out.counts()["matches"] == 1
    assert "embedding" not in str(out.counts())


def test_nobody_above_threshold_means_no_match() -> None:
    idx = ExactIndex(["alice"], np.stack([_unit([1, 0, 0])]), "m")
    pipe = FakePipeline({50: [_unit([0.3, 1, 0])]})
    out = process_frames([_frame(0, 50)], pipe, idx, threshold=0.5, max_pixels=10_000)  # type: ignore[arg-type]
    assert out.matches == [] and out.faces_seen == 2


def test_settings_from_env() -> None:
    s = Settings.from_env(
        {
            "LFR_STAGE": "prod",
            "LFR_MATCH_THRESHOLD": "0.61",
            "LFR_MAX_FRAMES_PER_BATCH": "10",
            "LFR_EMBED_FLIP": "false",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        }
    )
    assert s.frames_bucket == "lfr-prod-frames" and s.frames_queue == "lfr-prod-frames"
    assert s.match_threshold == 0.61 and s.max_frames_per_batch == 10 and s.embed_flip is False
    assert s.endpoint_url == "http://127.0.0.1:1"
    assert Settings.from_env({}).endpoint_url is None
