"""More views of one face at embedding time (test-time augmentation) against today's embedding
(not a test): prints figures, asserts nothing. Issue 23, measured and not kept.

Today each face is embedded with its mirror image (the flip sum). Here each face is also
aligned a little larger and smaller, or shifted by 2 px, and all the views' embeddings summed.
Holdout-half identities of faces/dev with two or more photos (up to 5 each), the central face
of each photo as the pipeline steadies it; every same-identity pair is mated, every other an
impostor. For each variant: the true match rate at per-pair false match rates 1e-3 .. 3e-5, the
mean mated score and the impostor spread. CPU is the recognizer's, times the views.
    .venv/bin/python benchmarks/embed_augmentation.py [--identities 300]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2
import numpy as np

from chalicelib.evaluation.openset import list_identities, name_half
from chalicelib.settings import Settings
from chalicelib.vision.align import ARCFACE_TEMPLATE, CROP_SIZE, similarity_transform
from chalicelib.vision.embed import l2_normalize
from chalicelib.vision.factory import build_pipeline

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "dev"
# (scale about the crop's centre, dx, dy) per view; each view is flip-summed as today.
VARIANTS = {
    "today": [(1.0, 0, 0)],
    "scale 0.94/1/1.06": [(1.0, 0, 0), (0.94, 0, 0), (1.06, 0, 0)],
    "shift 2 px x4": [(1.0, 0, 0), (1.0, 2, 0), (1.0, -2, 0), (1.0, 0, 2), (1.0, 0, -2)],
    "scale 0.9": [(1.0, 0, 0), (0.9, 0, 0)],
    "scale 1.1": [(1.0, 0, 0), (1.1, 0, 0)],
}


def aligned(image: np.ndarray, points: np.ndarray, scale: float, dx: float,
            dy: float) -> np.ndarray:
    c = CROP_SIZE / 2
    dst = (ARCFACE_TEMPLATE - c) * scale + c + np.array([dx, dy], np.float32)
    m = similarity_transform(points.reshape(5, 2), dst)
    return cv2.warpAffine(image, m, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=300)
    ap.add_argument("--data", type=Path, default=DEV)
    args = ap.parse_args()
    pipeline = build_pipeline(Settings())
    ids = list_identities(args.data)
    names = sorted(n for n, v in ids.items() if name_half(n) == 1 and len(v) >= 2)
    random.Random(1).shuffle(names)
    emb: dict[str, list[np.ndarray]] = {k: [] for k in VARIANTS}
    labels = []
    for k, name in enumerate(names[: args.identities]):
        for path in ids[name][:5]:
            image = cv2.imread(str(path))
            scale = pipeline.detector.input_scale(*image.shape[:2])
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            faces = pipeline.detect(image).faces
            if not faces:
                continue
            centre = np.array(image.shape[1::-1]) / 2
            face = min(faces, key=lambda f: float(np.linalg.norm(
                (f.detection.box[:2] + f.detection.box[2:]) / 2 - centre)))
            for variant, views in VARIANTS.items():
                crops = [aligned(image, face.detection.landmarks, *v) for v in views]
                emb[variant].append(l2_normalize(pipeline.recognizer.embed(crops).sum(0)))
            labels.append(k)
    lab = np.array(labels)
    upper = np.triu_indices(len(lab), 1)
    mated = (lab[:, None] == lab[None, :])[upper]
    print(f"{len(lab)} faces, {mated.sum()} mated pairs, {(~mated).sum()} impostor pairs")
    for variant, rows in emb.items():
        e = np.stack(rows)
        s = (e @ e.T)[upper]
        impostor = np.sort(s[~mated])[::-1]
        cells = []
        for fmr in (1e-3, 1e-4, 3e-5):
            t = impostor[max(int(fmr * len(impostor)), 1) - 1]
            cells.append(f"{fmr:.0e}: {(s[mated] > t).mean():.4f}")
        print(f"{variant:18s} x{len(VARIANTS[variant])} views  " + "  ".join(cells)
              + f"  mated mean {s[mated].mean():.4f}  impostor sd {s[~mated].std():.4f}")


if __name__ == "__main__":
    main()
