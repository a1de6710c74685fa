"""Which face of a reference photo is the subject's (pure): the one enrollment rule.

Used by enrollment (matching/template.py: CLI, API, bulk) and by `lfr eval`'s gallery
(evaluation/openset.py), so the figures measure the rule that enrolls people.

Every face the detector found takes part, whether or not it passed the quality gate: a blurred
face in front of a sharp bystander must not let the bystander stand in for the subject. The
subject is the face that clearly outranks every other one: better by a clear margin in size or
in centrality, and not worse by a clear margin in the other.

- Size margin, AREA_RATIO = 2 (box area; side 1.41x). Two adults at the same distance from the
  camera differ in face box area by well under 1.5x (head size, detector box noise); twice the
  area means the other face is at least 1.4x farther away: someone in the background.
- Centrality margin, CENTRE_MARGIN = 0.2 of the image. A reference photo is framed (or cropped)
  on its subject, so of two similar faces the one in the middle is meant and a neighbour cut by
  the edge of the frame is not. Centre offset: distance of the box centre from the image centre,
  in image widths and heights (0 in the middle, 0.5 at the middle of an edge).
- Centrality alone never picks one of a group: with two or more other faces of similar size
  (less than AREA_RATIO smaller), the photo is refused.
- A box overlapping two faces that do not overlap each other (IoU >= 0.2) covers half of each:
  a detector artefact between neighbours, left out. It is never the subject.

On faces/dev (5,698 photos) this picks a face in 5,640 and refuses 54 as ambiguous; in each of
the 444 photos with several usable faces where it picked one (and the person has another,
single-face photo), the face picked was the one most like that person's other photos. On the
53 crowd photos it refuses 52 (docs/enrollment.md).

Anything else is ambiguous and refused, with the faces listed (index, box) so the operator can
choose one with a FaceHint: a box (the face it overlaps most, at least HINT_MIN_IOU) or an index
into that list. The chosen face must have passed the quality gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AREA_RATIO = 2.0
CENTRE_MARGIN = 0.2
# A hint box must overlap the face it means at least this much (IoU): a rough box drawn by an
# operator around a face, not a face elsewhere in the photo.
HINT_MIN_IOU = 0.3
# Boxes overlapping at least this much (IoU) cover part of the same face. The detector merges
# boxes over 0.4 (NMS); two neighbours' faces side by side overlap little or not at all.
OVERLAP_IOU = 0.2
# Faces of similar size (less than AREA_RATIO smaller) the subject may be told apart from by
# centrality alone.
MAX_PEERS = 1

NO_FACE = "no_face"
AMBIGUOUS = "ambiguous"
UNUSABLE = "main_face_unusable"
HINT_NO_FACE = "hint_matches_no_face"


@dataclass(frozen=True)
class FaceHint:
    """The operator's choice of face in one reference image: a box or an index in the order of
    the refusal's listing (largest first)."""

    box: tuple[float, float, float, float] | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        if (self.box is None) == (self.index is None):
            raise ValueError("a face hint is a box or an index, not both or neither")
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if not (x2 > x1 and y2 > y1):
                raise ValueError(f"face box {self.box} must be x1,y1,x2,y2 with x2>x1, y2>y1")
        if self.index is not None and self.index < 0:
            raise ValueError("face index must be >= 0")

    @classmethod
    def parse(cls, text: str) -> FaceHint:
        """'2' (an index) or 'x1,y1,x2,y2' (a box in image pixels)."""
        parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
        try:
            if len(parts) == 1:
                return cls(index=int(parts[0]))
            if len(parts) == 4:
                x1, y1, x2, y2 = (float(p) for p in parts)
                return cls(box=(x1, y1, x2, y2))
        except ValueError as exc:
            raise ValueError(f"face hint {text!r}: {exc}") from None
        raise ValueError(f"face hint {text!r}: give an index or a box x1,y1,x2,y2")


@dataclass(frozen=True)
class SubjectFace:
    """The outcome: `index` into the boxes given (None when refused, with `code` and `reason`);
    `listing`: every face, largest first, as (index into the boxes, box) for the operator."""

    index: int | None
    code: str = ""
    reason: str = ""
    listing: list[tuple[int, tuple[int, int, int, int]]] = field(default_factory=list)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.clip(np.minimum(a[:, 2], b[2]) - np.maximum(a[:, 0], b[0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[3]) - np.maximum(a[:, 1], b[1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def centre_offsets(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    return np.hypot((cx - w / 2) / max(w, 1), (cy - h / 2) / max(h, 1))


def outranks(area_c: float, off_c: float, area_j: float, off_j: float) -> bool:
    """Does face c clearly outrank face j as the photo's subject: better by a clear margin in
    size or in centrality, and not worse by a clear margin in the other (see module doc)?"""
    larger = area_c >= AREA_RATIO * area_j
    smaller = area_j >= AREA_RATIO * area_c
    more_central = off_j - off_c >= CENTRE_MARGIN
    less_central = off_c - off_j >= CENTRE_MARGIN
    return (larger or more_central) and not (smaller or less_central)


def straddling(boxes: np.ndarray) -> np.ndarray:
    """Per box: does it overlap two other boxes that do not overlap each other? Such a box
    covers part of each of two faces (a detector artefact between neighbours), not a face."""
    n = len(boxes)
    overlap = np.stack([_iou(boxes, boxes[i]) for i in range(n)]) >= OVERLAP_IOU
    np.fill_diagonal(overlap, False)
    out = np.zeros(n, dtype=bool)
    for k in range(n):
        near = np.flatnonzero(overlap[k])
        out[k] = any(not overlap[i, j] for a, i in enumerate(near) for j in near[a + 1:])
    return out


def choose_subject_face(
    boxes: np.ndarray, usable: np.ndarray, shape: tuple[int, int],
    hint: FaceHint | None = None, gate_reasons: str = "",
) -> SubjectFace:
    """The subject's face among `boxes` (N, 4: x1, y1, x2, y2) of an image of `shape` (h, w);
    `usable[i]`: face i passed the quality gate; `gate_reasons`: why faces were kept out (for
    the message)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    usable = np.asarray(usable, dtype=bool).reshape(-1)
    if len(boxes) == 0:
        return SubjectFace(None, NO_FACE, "no face detected")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    off = centre_offsets(boxes, shape)
    order = sorted(range(len(boxes)), key=lambda i: (-area[i], off[i]))
    listing = [(i, tuple(int(round(v)) for v in boxes[i])) for i in order]
    if hint is not None:
        if hint.index is not None:
            if hint.index >= len(order):
                return SubjectFace(None, HINT_NO_FACE, f"face index {hint.index} given, but "
                                   f"{len(order)} face(s) found", listing)
            chosen = order[hint.index]
        else:
            overlap = _iou(boxes, np.asarray(hint.box, dtype=np.float64))
            chosen = int(np.argmax(overlap))
            if overlap[chosen] < HINT_MIN_IOU:
                return SubjectFace(None, HINT_NO_FACE,
                                   f"no face found in the given box {hint.box}", listing)
    else:
        artefact = straddling(boxes)
        # At most one face can outrank all the others (outranking is antisymmetric).
        faces = [i for i in order if not artefact[i]]
        winners = [c for c in faces if all(
            outranks(area[c], off[c], area[j], off[j]) for j in faces if j != c)]
        # A group photo: centrality tells a portrait from its neighbour at the edge of the frame,
        # not one of three or more people of similar size from the others.
        winners = [c for c in winners
                   if sum(AREA_RATIO * area[j] > area[c] for j in faces if j != c) <= MAX_PEERS]
        if not winners:
            found = "; ".join(f"[{k}] box {','.join(str(v) for v in b)}"
                              for k, (_, b) in enumerate(listing))
            return SubjectFace(
                None, AMBIGUOUS,
                f"{len(boxes)} faces and none clearly the subject's (larger or more central by "
                f"a clear margin); choose one by index or box: {found}", listing)
        chosen = winners[0]
    if not usable[chosen]:
        why = gate_reasons or "quality gate"
        others = "; another face in the photo would be someone else" if len(boxes) > 1 else ""
        return SubjectFace(None, UNUSABLE, f"no usable face of the subject ({why}){others}",
                           listing)
    return SubjectFace(chosen, listing=listing)
