"""The matching index and one batch's processing, with an in-process fake of the vision stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from chalicelib.ingest.batch_format import Frame
from chalicelib.ingest.process import FusionPolicy, process_frames
from chalicelib.matching.index import ExactIndex
from chalicelib.settings import Settings
from chalicelib.vision.pipeline import GatedFace, GatedFrame
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
    """Frame pixel value v selects the faces of that frame: faces[v] = [(box, embedding)].

    A face's crop carries the index of its embedding, so embed() can give it back.
    """

    faces: dict[int, list[tuple[list[float], np.ndarray]]]
    model_id: str = "m"
    qualities: dict[int, list[float]] = field(default_factory=dict)  # default 0.5 + 0.1 * j
    detector: object = field(default_factory=lambda: FakeDetector())

    def __post_init__(self) -> None:
        self.table = [e for fs in self.faces.values() for _, e in fs]
        self.embedded = 0
        self.region_searches = 0

    def detect_near(self, image: np.ndarray, box: np.ndarray) -> GatedFrame:
        self.region_searches += 1
        return self.detect(image)

    def steadied_crop(self, _work: np.ndarray, _det: Detection, crop: np.ndarray,
                      _scale: float | None = None) -> np.ndarray:
        return crop

    def detect(self, image: np.ndarray, steady: bool = True, stream: bool = False) -> GatedFrame:
        out, start = [], 0
        for v, fs in self.faces.items():
            if v == int(round(image[0, 0, 0] / 10)):
                for j, (box, _) in enumerate(fs):
                    det = Detection(np.array(box, np.float32), 0.99, np.zeros((5, 2), np.float32))
                    crop = np.full((112, 112, 3), start + j, np.uint8)
                    q = self.qualities.get(v, [])
                    out.append(GatedFace(det, crop, quality=q[j] if j < len(q) else 0.5 + 0.1 * j))
            start += len(fs)
        return GatedFrame(out, {"too_small": 1}, {"detect": 1.0, "align": 0.1})

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        self.embedded += len(crops)
        return np.stack([self.table[int(c[0, 0, 0])] for c in crops])


class FakeDetector:
    def input_scale(self, _h: int, _w: int) -> float:
        return 1.0


def _frame(i: int, value: int, fps: float = 5.0) -> Frame:
    """Frame i of a camera at `fps`, showing the faces of FakePipeline.faces[value]."""
    image = np.full((200, 240, 3), value * 10, np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    return Frame(i, f"{i:06d}.jpg", T + timedelta(seconds=i / fps), buf.tobytes())


ALICE, BOB = _unit([1, 0, 0, 0]), _unit([0, 1, 0, 0])
STRANGER = _unit([0, 0, 1, 0])
INDEX = ExactIndex(["alice", "bob"], np.stack([ALICE, BOB]), "m")
PER_FRAME = FusionPolicy(enabled=False)


def test_per_frame_one_match_per_subject_best_face_kept() -> None:
    near = _unit([1, 0.3, 0, 0])  # alice, less clearly
    pipe = FakePipeline(
        {
            1: [([0, 0, 9, 9], near), ([30, 30, 40, 40], STRANGER)],
            2: [([0, 0, 9, 9], ALICE)],
            3: [([0, 0, 9, 9], STRANGER)],
        }
    )
    frames = [
        _frame(0, 1),
        _frame(1, 2),
        _frame(2, 3),
        Frame(3, "000003.jpg", T, b"", None),
        Frame(4, "x.jpg", T, None, "missing"),
    ]
    out = process_frames(frames, pipe, INDEX, 0.5, 100_000, PER_FRAME)  # type: ignore[arg-type]
    assert [m.subject_id for m in out.matches] == ["alice"]
    assert out.matches[0].frame_index == 1  # the clearest view, not the first
    assert out.matches[0].score > 0.99
    assert out.frames_processed == 3
    assert dict(out.frames_skipped) == {"empty": 1, "missing": 1}
    assert out.faces_seen == 4 + 3  # passing faces + gated-out ones
    assert out.counts()["matches"] == 1


def test_nobody_above_threshold_means_no_match() -> None:
    pipe = FakePipeline({5: [([0, 0, 9, 9], _unit([0.3, 0.1, 1, 0]))]})
    out = process_frames([_frame(0, 5)], pipe, INDEX, 0.5, 100_000)  # type: ignore[arg-type]
    assert out.matches == [] and out.faces_seen == 2


def test_track_fusion_decides_once_on_the_best_faces() -> None:
    rng = np.random.default_rng(0)
    noisy = [_unit(list(ALICE + rng.normal(0, 0.45, 4))) for _ in range(6)]
    # Alice walks right across six frames; Bob stands still elsewhere in each.
    faces = {
        v: [([10 + 6 * v, 10, 40 + 6 * v, 40], noisy[v]), ([100, 100, 130, 130], BOB)]
        for v in range(6)
    }
    pipe = FakePipeline(faces)
    frames = [_frame(i, i) for i in range(6)]
    fused = process_frames(frames, pipe, INDEX, 0.5, 100_000, FusionPolicy(best_k=3))  # type: ignore[arg-type]
    assert fused.tracks == 2
    assert fused.faces_embedded == 6  # 3 best faces of each of the two tracks, not all 12
    assert sorted(m.subject_id for m in fused.matches) == ["alice", "bob"]
    alice = next(m for m in fused.matches if m.subject_id == "alice")
    assert alice.track_faces == 6
    per_face = [float(e @ ALICE) for e in noisy]
    assert alice.score > float(np.mean(per_face))  # fusing beats the average single view
    single = process_frames(frames, FakePipeline(faces), INDEX, 0.5, 100_000, PER_FRAME)  # type: ignore[arg-type]
    assert single.tracks == 12 and single.faces_embedded == 12


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
