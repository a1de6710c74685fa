"""Synthetic camera footage for the demo: public-domain portraits walking across a street scene.

Only images the project may redistribute are used (demo/people, US federal works, see its
SOURCES.md), so the demo runs from the repository alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PEOPLE = Path(__file__).resolve().parents[2] / "demo" / "people"


def portrait(name: str, n: int) -> np.ndarray:
    image = cv2.imread(str(PEOPLE / name / f"{n}.jpg"), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{PEOPLE / name / f'{n}.jpg'}")
    return image


@dataclass(frozen=True)
class Walker:
    name: str
    photo: int  # which of the person's photos (1 colour, 2 another sitting in greyscale)
    y: int  # top of the head-and-shoulders cut-out in the frame
    x_start: float
    x_end: float
    height: int = 230  # px of the cut-out: a face ~90 px wide


def _background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A plain street-like backdrop: a wall, a pavement and noise, no faces."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h * 2 // 3] = (150, 160, 170)
    img[h * 2 // 3 :] = (90, 95, 100)
    for x in range(0, w, 160):
        cv2.rectangle(img, (x + 20, 60), (x + 120, 300), (110, 120, 135), -1)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _cutout(image: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    scale = height / h
    img = cv2.resize(image, (round(w * scale), height), interpolation=cv2.INTER_AREA)
    mask = np.zeros(img.shape[:2], np.float32)
    cy, cx = img.shape[0] // 2, img.shape[1] // 2
    cv2.ellipse(mask, (cx, cy), (cx - 2, cy - 2), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 4)[..., None]
    return img, mask


def render_scene(walkers: list[Walker], frames: int, size: tuple[int, int] = (1280, 720),
                 seed: int = 0) -> list[np.ndarray]:
    w, h = size
    rng = np.random.default_rng(seed)
    bg = _background(w, h, rng)
    cutouts = [_cutout(portrait(wk.name, wk.photo), wk.height) for wk in walkers]
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        frame = bg.astype(np.float32)
        for wk, (img, mask) in zip(walkers, cutouts, strict=True):
            x = round(wk.x_start + (wk.x_end - wk.x_start) * t)
            ch, cw = img.shape[:2]
            x0, x1 = max(0, x), min(w, x + cw)
            y0, y1 = max(0, wk.y), min(h, wk.y + ch)
            if x1 <= x0 or y1 <= y0:
                continue
            sub = img[y0 - wk.y : y1 - wk.y, x0 - x : x1 - x]
            m = mask[y0 - wk.y : y1 - wk.y, x0 - x : x1 - x]
            frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1 - m) + sub * m
        out.append(np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8))
    return out


def write_video(frames: list[np.ndarray], path: Path, fps: float = 10.0) -> Path:
    """Motion-JPEG AVI: a codec every OpenCV build can write and read back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    for f in frames:
        writer.write(f)
    writer.release()
    return path
