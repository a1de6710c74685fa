"""Plain data passed between the vision stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detection:
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2 in image pixels
    score: float
    # (5, 2) float32 in image order, as RetinaFace outputs them:
    # right eye, left eye, nose, right mouth corner, left mouth corner.
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])
