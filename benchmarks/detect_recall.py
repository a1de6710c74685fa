"""RetinaFace recall at each detector input size (not a test): prints figures, asserts nothing.

The detector downscales a frame whose longer side exceeds max_side; a smaller max_side is
cheaper but shrinks small faces towards the network's smallest anchor (16 px). This shows what
each size costs in faces, so a size can be chosen for speed without losing the small ones.

1. The 43 hand-labelled faces of the 9 dlib PASCAL VOC photos, as they are (<= 500 px).
2. Small faces in large frames: each labelled photo scaled so that its median face is
   --face-px wide and pasted on a grey 1920x1080 and 3840x2160 canvas; CPU ms per frame.
3. The other crowd photos (no labels): faces >= 32 px found at full resolution that are found
   again at each size (IoU >= 0.5).

Recall is given over all labelled faces and over those >= 32 px (the quality gate refuses
smaller detector boxes), counting detections at the detector threshold (0.7) and only those the
gate accepts (score >= 0.9). Needs ../shared/data/crowds (internal test data).
    .venv/bin/python benchmarks/detect_recall.py [--sizes 320 480 ...] [--face-px 28 40 64]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from chalicelib.vision.detect import RetinaFaceDetector
from chalicelib.vision.models import default_detector_spec

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CROWDS = DATA / "crowds"
LABELS = CROWDS / "annotations_dlib_voc_faces.json"
NATIVE = 1 << 30  # a max_side no frame reaches: the full-resolution run
SIZES = [320, 480, 640, 960, 1280, 1920, NATIVE]
CANVASES = [(1920, 1080), (3840, 2160)]
DETECTOR_SCORE, GATE_SCORE, GATE_PX = 0.7, 0.9, 32  # detect.py and quality.py defaults
# dlib labels are tight square boxes; RetinaFace's boxes take in more forehead and chin, so a
# correct detection of a small face can sit just under IoU 0.5 with its label.
LABEL_IOU, STRICT_IOU, AGREE_IOU = 0.4, 0.5, 0.5
GREY = 128


@dataclass
class Case:
    name: str
    image: np.ndarray
    truth: np.ndarray  # (N, 4) x1, y1, x2, y2: labels, or the native run's faces (part 3)


@dataclass
class Found:
    boxes: np.ndarray  # (M, 4) x1, y1, x2, y2
    scores: np.ndarray  # (M,)
    cpu_ms: float


def size_name(size: int) -> str:
    return "native" if size == NATIVE else str(size)


def short_side(boxes: np.ndarray) -> np.ndarray:
    return np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def run(det: RetinaFaceDetector, image: np.ndarray) -> Found:
    # process_time counts every thread of the process, so it is the CPU a Lambda pays for.
    t0 = time.process_time()
    faces = det.detect(image)
    cpu_ms = (time.process_time() - t0) * 1000
    boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
    return Found(boxes, np.array([f.score for f in faces], np.float32), cpu_ms)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a, area_b = (np.prod(x[:, 2:] - x[:, :2], axis=1) for x in (a, b))
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match(truth: np.ndarray, found: Found, min_iou: float, min_score: float) -> tuple[
    np.ndarray, int
]:
    """Greedy one-to-one matching, best detection first (PASCAL VOC style).

    Returns which truth boxes were found and how many detections matched nothing.
    """
    keep = found.scores >= min_score
    boxes, scores = found.boxes[keep], found.scores[keep]
    hit = np.zeros(len(truth), bool)
    if len(truth) == 0:
        return hit, len(boxes)
    ious = iou_matrix(boxes, truth)
    unmatched = 0
    for i in np.argsort(-scores, kind="stable"):
        cand = np.where(hit, -1.0, ious[i])
        j = int(np.argmax(cand))
        if cand[j] >= min_iou:
            hit[j] = True
        else:
            unmatched += 1
    return hit, unmatched


def recall(pairs: Sequence[tuple[Case, Found]], min_iou: float, min_score: float,
           min_px: float = 0.0) -> tuple[int, int, int]:
    """(found, of truth boxes with shorter side >= min_px, unmatched detections)."""
    hits = total = extra = 0
    for case, found in pairs:
        hit, unmatched = match(case.truth, found, min_iou, min_score)
        big = short_side(case.truth) >= min_px
        hits, total, extra = hits + int(hit[big].sum()), total + int(big.sum()), extra + unmatched
    return hits, total, extra


def frac(hits: int, total: int) -> str:
    return f"{hits / total:5.3f} {hits:>3}/{total:<3}" if total else f"{'-':>5} {'0/0':<7}"


def load_labelled() -> list[Case]:
    doc = json.loads(LABELS.read_text())
    cases = []
    for name, entry in sorted(doc["images"].items()):
        xywh = np.asarray(entry["boxes_xywh"], np.float32).reshape(-1, 4)
        truth = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        cases.append(Case(name, cv2.imread(str(CROWDS / name), cv2.IMREAD_COLOR), truth))
    return cases


def on_canvas(case: Case, canvas_wh: tuple[int, int], face_px: float) -> Case:
    """The photo scaled so its median labelled face is face_px, centred on a grey frame."""
    f = face_px / float(np.median(short_side(case.truth)))
    h, w = case.image.shape[:2]
    cw, ch = canvas_wh
    f = min(f, cw / w, ch / h)  # never the case at these sizes, but keep the photo whole
    sw, sh = round(w * f), round(h * f)
    img = cv2.resize(case.image, (sw, sh), interpolation=cv2.INTER_AREA if f < 1 else
                     cv2.INTER_CUBIC)
    x0, y0 = (cw - sw) // 2, (ch - sh) // 2
    canvas = np.full((ch, cw, 3), GREY, np.uint8)
    canvas[y0:y0 + sh, x0:x0 + sw] = img
    truth = case.truth * np.array([sw / w, sh / h] * 2, np.float32) + [x0, y0, x0, y0]
    return Case(case.name, canvas, truth.astype(np.float32))


def header(title: str, cols: str) -> None:
    print(f"\n{title}\n{cols}\n{'-' * len(cols)}")


def part1(dets: dict[int, RetinaFaceDetector], cases: list[Case]) -> None:
    n_all = sum(len(c.truth) for c in cases)
    n_big = sum(int((short_side(c.truth) >= GATE_PX).sum()) for c in cases)
    header(
        f"1. Labelled dlib VOC photos: {len(cases)} images <= 500 px, {n_all} faces "
        f"({n_big} >= {GATE_PX} px); recall at IoU >= {LABEL_IOU} (and {STRICT_IOU})",
        f"{'max_side':>8} | {'score>=0.7 all':>13} {'>=32px':>13} | {'score>=0.9 all':>13} "
        f"{'>=32px':>13} | {'IoU0.5 @0.7':>13} {'@0.9':>13} | {'unmatched @0.7/@0.9':>19}",
    )
    for size, det in dets.items():
        pairs = [(c, run(det, c.image)) for c in cases]
        a7, t, x7 = recall(pairs, LABEL_IOU, DETECTOR_SCORE)
        b7, tb, _ = recall(pairs, LABEL_IOU, DETECTOR_SCORE, GATE_PX)
        a9, _, x9 = recall(pairs, LABEL_IOU, GATE_SCORE)
        b9, _, _ = recall(pairs, LABEL_IOU, GATE_SCORE, GATE_PX)
        s7, _, _ = recall(pairs, STRICT_IOU, DETECTOR_SCORE)
        s9, _, _ = recall(pairs, STRICT_IOU, GATE_SCORE)
        print(f"{size_name(size):>8} | {frac(a7, t)} {frac(b7, tb)} | {frac(a9, t)} "
              f"{frac(b9, tb)} | {frac(s7, t)} {frac(s9, t)} | {f'{x7}/{x9}':>19}")


def part2(dets: dict[int, RetinaFaceDetector], cases: list[Case], face_px: Sequence[float]) -> None:
    for cw, ch in CANVASES:
        for px in face_px:
            placed = [on_canvas(c, (cw, ch), px) for c in cases]
            sizes = np.concatenate([short_side(c.truth) for c in placed])
            header(
                f"2. {cw}x{ch} grey frame, one photo each, median face {px:g} px "
                f"(faces {sizes.min():.0f}-{sizes.max():.0f} px); recall at IoU >= {LABEL_IOU}",
                f"{'max_side':>8} {'net input':>10} | {'score>=0.7 all':>13} {'>=32px':>13} | "
                f"{'score>=0.9 all':>13} {'>=32px':>13} | {'unmatched':>9} | "
                f"{'CPU ms/frame':>12}",
            )
            for size, det in dets.items():
                run(det, placed[0].image)  # warm-up: the first run at a new shape allocates
                pairs = [(c, run(det, c.image)) for c in placed]
                a7, t, x7 = recall(pairs, LABEL_IOU, DETECTOR_SCORE)
                b7, tb, _ = recall(pairs, LABEL_IOU, DETECTOR_SCORE, GATE_PX)
                a9, _, _ = recall(pairs, LABEL_IOU, GATE_SCORE)
                b9, _, _ = recall(pairs, LABEL_IOU, GATE_SCORE, GATE_PX)
                k = det.input_scale(ch, cw)
                ms = statistics.median(f.cpu_ms for _, f in pairs)
                print(f"{size_name(size):>8} {f'{round(cw * k)}x{round(ch * k)}':>10} | "
                      f"{frac(a7, t)} {frac(b7, tb)} | {frac(a9, t)} {frac(b9, tb)} | "
                      f"{x7:>9} | {ms:>12.1f}")


def part3(dets: dict[int, RetinaFaceDetector], paths: list[Path]) -> None:
    images = [(p.name, cv2.imread(str(p), cv2.IMREAD_COLOR)) for p in paths]
    native = [run(dets[NATIVE], img) for _, img in images]

    def reference(min_score: float) -> Callable[[int], Case]:
        # Truth = the full-resolution run's faces that the gate could accept (>= 32 px).
        def ref(i: int) -> Case:
            f = native[i]
            keep = (f.scores >= min_score) & (short_side(f.boxes) >= GATE_PX)
            return Case(images[i][0], images[i][1], f.boxes[keep])
        return ref

    ref7, ref9 = reference(DETECTOR_SCORE), reference(GATE_SCORE)
    n7 = sum(len(ref7(i).truth) for i in range(len(images)))
    n9 = sum(len(ref9(i).truth) for i in range(len(images)))
    longest = sorted(max(img.shape[:2]) for _, img in images)
    header(
        f"3. Other crowd photos: {len(images)} images, long side {longest[0]}-{longest[-1]} px "
        f"(median {statistics.median(longest):g}); faces >= {GATE_PX} px at native found again "
        f"(IoU >= {AGREE_IOU})",
        f"{'max_side':>8} | {f'@0.7 of {n7}':>13} | {f'@0.9 of {n9}':>13} | "
        f"{'imgs losing any @0.9':>20} | {'new >=32px @0.9':>15} | {'CPU ms/img':>10}",
    )
    for size, det in dets.items():
        found = native if size == NATIVE else [run(det, img) for _, img in images]
        p7 = [(ref7(i), f) for i, f in enumerate(found)]
        p9 = [(ref9(i), f) for i, f in enumerate(found)]
        h7, t7, _ = recall(p7, AGREE_IOU, DETECTOR_SCORE)
        h9, t9, _ = recall(p9, AGREE_IOU, GATE_SCORE)
        losing = sum(not match(c.truth, f, AGREE_IOU, GATE_SCORE)[0].all() for c, f in p9)
        # Faces the gate could accept at this size that the native run did not give it.
        new = 0
        for c, f in p9:
            big = Found(f.boxes[short_side(f.boxes) >= GATE_PX],
                        f.scores[short_side(f.boxes) >= GATE_PX], 0.0)
            new += match(c.truth, big, AGREE_IOU, GATE_SCORE)[1]
        ms = statistics.mean(f.cpu_ms for f in found)
        print(f"{size_name(size):>8} | {frac(h7, t7)} | {frac(h9, t9)} | {losing:>20} | "
              f"{new:>15} | {ms:>10.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES[:-1],
                    help="max_side values; a native (full resolution) run is always added")
    ap.add_argument("--face-px", type=float, nargs="+", default=[28, 40, 64],
                    help="median face width on the part-2 canvases")
    ap.add_argument("--parts", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    if not LABELS.exists():
        print(f"skipped: needs {CROWDS} (internal test data in ../shared/data)")
        return 0
    cv2.setNumThreads(1)  # resize threads would inflate CPU time and load a shared machine
    base = RetinaFaceDetector.from_spec(default_detector_spec(), threads=1, max_side=NATIVE,
                                        min_side=0)
    # One onnxruntime session for every size: max_side only changes the resize before it.
    dets: dict[int, RetinaFaceDetector] = {
        s: RetinaFaceDetector(base.session, max_side=s, min_side=0)
        for s in sorted(set(args.sizes))
        if s < NATIVE
    }
    dets[NATIVE] = base
    print(f"detector threshold {base.score_threshold}, NMS {base.nms_threshold}, 1 onnxruntime "
          f"thread; CPU = time.process_time around detect (all threads)")
    t0 = time.perf_counter()
    labelled = load_labelled()
    if 1 in args.parts:
        part1(dets, labelled)
    if 2 in args.parts:
        part2(dets, labelled, args.face_px)
    if 3 in args.parts:
        known = {c.name for c in labelled}
        part3(dets, [p for p in sorted(CROWDS.glob("*.jpg")) if p.name not in known])
    print(f"\n(wall {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
