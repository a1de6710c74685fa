"""Processing of one frame batch of one camera: the pure core (no AWS). The worker wraps it
with storage.

decode -> detect (the whole frame every `key_interval_s`, between them only around the tracks
that still want a view) -> align, quality gate -> link faces into tracks, continuing the tracks
of earlier batches -> embed a track's best faces once per passing (again only on a clearly better
view, within a budget) -> fuse -> one 1:N decision -> best track per subject.

Privacy by construction: faces, crops and embeddings live only inside this function; what leaves
it is counts, timings, the matches, and the camera's track state (ingest/continuity.py:
geometry, times, quality and decision flags; no embedding, no pixels, no score).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from chalicelib.ingest.batch_format import Frame
from chalicelib.ingest.continuity import CameraTracks, CarriedTrack
from chalicelib.matching.decision import Match, decide
from chalicelib.matching.index import ExactIndex
from chalicelib.vision.decode import FrameDecodeError, decode_jpeg
from chalicelib.vision.detect import crop_around
from chalicelib.vision.pipeline import FacePipeline, GatedFace, GatedFrame
from chalicelib.vision.track import (
    Track,
    Tracker,
    TrackerPolicy,
    centre,
    iou,
    link_cost,
    size,
)
from chalicelib.vision.types import Detection

# A matched passing still in view refreshes its sighting (alerts/sightings.py) this often: well
# inside the re-alert window, and not one write per batch.
SUSTAIN_EVERY_S = 15.0


@dataclass(frozen=True)
class FusionPolicy:
    enabled: bool = True  # False: every face of every frame decided on its own (the baseline)
    best_k: int = 2  # faces of a track embedded and fused for its first decision
    # Faces embedded per passing, all batches together; after the first decision a track is
    # embedded again only on a view whose quality is `better_view` times the best one so far.
    max_embedded: int = 4
    better_view: float = 1.25
    # Full-frame detection at most this far apart in capture time (new faces are found on
    # these); between them the detector looks only around tracks that still want a view.
    # 0: every frame.
    key_interval_s: float = 0.6
    # A region search costs about its area; past this share of the frame, detect it all.
    max_region_share: float = 0.5
    tracker: TrackerPolicy = TrackerPolicy()


@dataclass
class _View:
    """One face of a track, enough to embed it later and show it to an officer."""

    frame_index: int
    captured_at: datetime
    face: GatedFace
    scale: float  # the frame's detection scale (the mirror pass must see the face as big)
    work: np.ndarray | None = None  # the frame around the face; dropped once not a best view
    origin: tuple[int, int] = (0, 0)


@dataclass
class BatchOutcome:
    frames_total: int = 0
    frames_processed: int = 0
    frames_skipped: Counter[str] = field(default_factory=Counter)
    keyframes: int = 0  # frames detected whole
    faces_seen: int = 0
    faces_rejected: Counter[str] = field(default_factory=Counter)
    tracks: int = 0  # tracks with a face in this batch
    passings: int = 0  # of them, people first seen in this batch (not continued)
    continued: int = 0  # tracks continued from an earlier batch
    faces_embedded: int = 0
    decisions: int = 0
    matches: list[Match] = field(default_factory=list)
    # (subject, last capture time) of passings that matched in an earlier batch and go on.
    sustained: list[tuple[str, datetime]] = field(default_factory=list)
    timings_ms: Counter[str] = field(default_factory=Counter)
    carry: CameraTracks = field(default_factory=CameraTracks)  # for the camera's next batch

    def counts(self) -> dict[str, object]:
        """Counts only: safe to log and to put in metrics."""
        return {
            "frames_total": self.frames_total,
            "frames_processed": self.frames_processed,
            "frames_skipped": dict(self.frames_skipped),
            "keyframes": self.keyframes,
            "faces_seen": self.faces_seen,
            "faces_rejected": dict(self.faces_rejected),
            "tracks": self.tracks,
            "passings": self.passings,
            "continued": self.continued,
            "faces_embedded": self.faces_embedded,
            "decisions": self.decisions,
            "matches": len(self.matches),
        }


def process_frames(
    frames: Iterable[Frame],
    pipeline: FacePipeline,
    index: ExactIndex,
    threshold: float,
    max_pixels: int,
    fusion: FusionPolicy = FusionPolicy(),
    carried: CameraTracks | None = None,
    now: float | None = None,
) -> BatchOutcome:
    """One alert per subject per passing, from the person's best views.

    `carried`: the camera's state after its earlier batches (None: this batch stands alone);
    the state after this batch is returned in `outcome.carry`. `now`: wall clock, for expiry.
    """
    now = time.time() if now is None else now
    state = (carried or CameraTracks()).pruned(now)
    summaries = {t.tid: t for t in state.tracks} if fusion.enabled else {}
    tracker: Tracker[_View] = Tracker(fusion.tracker, [_as_track(t) for t in summaries.values()])
    out = BatchOutcome()
    last_key = state.last_key_t
    for frame in frames:
        out.frames_total += 1
        if frame.data is None:
            out.frames_skipped[frame.problem or "unreadable"] += 1
            continue
        t0 = time.perf_counter()
        try:
            image = decode_jpeg(frame.data, max_pixels)
        except FrameDecodeError as exc:
            out.frames_skipped[exc.reason] += 1
            continue
        finally:  # refusals count too: what a hostile frame cost is visible
            out.timings_ms["decode"] += (time.perf_counter() - t0) * 1000
        out.frames_processed += 1
        t = frame.captured_at.timestamp()
        scale = pipeline.detector.input_scale(*image.shape[:2])
        tracker.leave(t, image.shape[1], image.shape[0])
        wanting = [tr for tr in tracker.live if t - tr.last_t <= fusion.tracker.max_gap_s
                   and _wants_view(tr, summaries.get(tr.tid), fusion)]
        region_area = sum((3 * size(tr.last_box)) ** 2 for tr in wanting)
        whole = (not fusion.enabled or last_key is None or not 0 <= t - last_key
                 < fusion.key_interval_s - 1e-3
                 or region_area > fusion.max_region_share * image.shape[0] * image.shape[1])
        if whole:
            gated = pipeline.detect(image, steady=False)
            out.keyframes += 1
            last_key = t if last_key is None else max(last_key, t)
            _account(out, gated)
            views = [(f.detection.box, _view(frame, f, image, scale)) for f in gated.faces]
            if fusion.enabled:
                tracker.step(t, views)
            else:
                for box, v in views:
                    single: Track[_View] = Track()
                    single.observe(t, box, v)
                    tracker.done.append(single)
        else:
            counted: list[np.ndarray] = []  # regions overlap: a face is counted once
            pairs: list[tuple[float, int, GatedFace]] = []
            for ti, tr in enumerate(wanting):
                gated = pipeline.detect_near(image, tr.predict(t))
                _account(out, gated, counted)
                pairs += [(c, ti, f) for f in gated.faces
                          if (c := link_cost(tr, t, f.detection.box, fusion.tracker)) is not None]
            # Closest first, one face per track and one track per face: two people side by
            # side each keep their own, even when one of them is missed in this frame.
            taken: list[np.ndarray] = []
            linked: set[int] = set()
            for _, ti, face in sorted(pairs, key=lambda p: p[0]):
                if ti in linked or any(iou(face.detection.box, b) >= 0.5 for b in taken):
                    continue
                linked.add(ti)
                taken.append(face.detection.box)
                wanting[ti].observe(t, face.detection.box, _view(frame, face, image, scale))
        for tr in tracker.live:
            if tr.times and tr.times[-1] == t:
                _keep_best(tr, fusion.best_k)
    tracks = [tr for tr in tracker.tracks() if tr.items]
    if fusion.enabled:
        _link_backwards(tracks, summaries, fusion.tracker)
    out.tracks = len(tracks)
    out.matches = _decide_tracks(tracks, summaries, pipeline, index, threshold, fusion, out, now)
    if fusion.enabled:
        state.tracks = list(summaries.values())
        state.last_key_t = last_key
        out.carry = state
    return out


def _account(out: BatchOutcome, gated: GatedFrame,
             counted: list[np.ndarray] | None = None) -> None:
    """Timings and counts of one detection; `counted`: boxes of this frame counted already
    (region searches of nearby tracks see the same faces)."""
    out.timings_ms.update(gated.timings_ms)
    if counted is None:
        out.faces_rejected.update(gated.rejected)
        out.faces_seen += len(gated.faces) + sum(gated.rejected.values())
        return

    def new(box: np.ndarray) -> bool:
        fresh = all(iou(box, b) < 0.5 for b in counted)
        if fresh:
            counted.append(box)
        return fresh

    out.faces_seen += sum(new(f.detection.box) for f in gated.faces)
    refused_new = [new(d.box) for d in gated.refused]
    out.faces_seen += sum(refused_new)
    if all(refused_new):  # reasons are tallied per region: counted once, with their faces
        out.faces_rejected.update(gated.rejected)


def _view(frame: Frame, face: GatedFace, image: np.ndarray, scale: float) -> _View:
    x1, y1, x2, y2 = (float(v) for v in face.detection.box[:4])
    # Room for the mirror pass (twice the face) and the officer's crop (see context_crop).
    work, xa, ya = crop_around(image, (x1 + x2) / 2, (y1 + y2) / 2,
                               1.1 * max(x2 - x1, y2 - y1) + 2)
    return _View(frame.index, frame.captured_at, face, scale,
                 None if work is None else work.copy(), (xa, ya))


def _keep_best(track: Track[_View], k: int) -> None:
    """Only a track's k best views keep their pixels: memory stays bounded on long tracks."""
    best = sorted(track.items, key=lambda v: -v.face.quality)[:k]
    for v in track.items:
        if v.work is not None and all(v is not b for b in best):
            v.work = None


def _as_track(s: CarriedTrack) -> Track[_View]:
    return Track(
        tid=s.tid, first_t=s.first_t, last_t=s.last_t,
        first_box=np.asarray(s.first_box, np.float32), last_box=np.asarray(s.last_box, np.float32),
        velocity=None if s.velocity is None else np.asarray(s.velocity, np.float32),
        carried=True,
    )


def _wants_view(tr: Track[_View], s: CarriedTrack | None, fusion: FusionPolicy) -> bool:
    """Does looking for this track's face between full-frame detections buy anything?"""
    if s is None or s.decisions == 0:
        return True  # not decided yet: its best views are wanted
    if s.matched or s.embedded >= fusion.max_embedded:
        return False
    return s.best_q * fusion.better_view <= 1.0  # a clearly better view is still possible


def _link_backwards(tracks: list[Track[_View]], summaries: dict[str, CarriedTrack],
                    policy: TrackerPolicy) -> None:
    """A batch processed after a later one of the same camera (SQS does not keep order): its
    new tracks may be the beginning, or a middle part, of tracks already carried. Such a track
    takes the carried one's id, and so its decision flags."""
    taken = {tr.tid for tr in tracks if tr.carried}
    for tr in tracks:
        if tr.carried:
            continue
        costs = [(c, s.tid) for s in summaries.values()
                 if s.tid not in taken and (c := _span_cost(s, tr, policy)) is not None]
        if costs:  # its summary then extends backwards (_summary)
            tid = min(costs)[1]
            taken.add(tid)
            tr.tid, tr.carried = tid, True


def _span_cost(s: CarriedTrack, tr: Track[_View], policy: TrackerPolicy) -> float | None:
    """How well a track of this batch fits before, or inside a gap of, a carried track."""
    if 0 < s.first_t - tr.last_t <= policy.max_gap_s:
        return link_cost(_as_track(s), tr.last_t, tr.last_box, policy)
    if not s.first_t < tr.first_t <= tr.last_t < s.last_t:
        return None
    # Inside: where the carried track should have been meanwhile, by interpolation.
    a, b = np.asarray(s.first_box, np.float32), np.asarray(s.last_box, np.float32)
    f = (tr.first_t - s.first_t) / (s.last_t - s.first_t)
    expected = a + (b - a) * f
    if not 1 / policy.max_size_ratio <= size(tr.first_box) / size(expected) \
            <= policy.max_size_ratio:
        return None
    residual = float(np.linalg.norm(centre(tr.first_box) - centre(expected))) / size(expected)
    gap = min(tr.first_t - s.first_t, s.last_t - tr.last_t)
    return residual if residual <= policy.max_residual + policy.residual_per_s * gap else None


def _summary(tr: Track[_View], held: CarriedTrack | None, now: float) -> CarriedTrack:
    """The carried state of a track after this batch: geometry, times and flags only."""
    s = held or CarriedTrack(tr.tid, tr.first_t, tr.last_t, [], [], None, now)
    s.first_t, s.last_t = min(s.first_t, tr.first_t), max(s.last_t, tr.last_t)
    if tr.first_t <= s.first_t:
        s.first_box = [float(v) for v in tr.first_box]
    if tr.last_t >= s.last_t:
        s.last_box = [float(v) for v in tr.last_box]
    if tr.velocity is not None:  # a late single face does not erase the carried motion
        s.velocity = [float(v) for v in tr.velocity]
    s.seen_at = now
    return s


def _to_embed(tr: Track[_View], s: CarriedTrack, fusion: FusionPolicy) -> list[_View]:
    ranked = sorted((v for v in tr.items if v.work is not None), key=lambda v: -v.face.quality)
    budget = fusion.max_embedded - s.embedded
    if s.matched or budget <= 0 or not ranked:
        return []
    if not fusion.enabled:
        return ranked[:1]
    if s.decisions == 0:
        return ranked[: min(fusion.best_k, budget)]
    return ranked[:1] if ranked[0].face.quality >= s.best_q * fusion.better_view else []


def _decide_tracks(
    tracks: list[Track[_View]],
    summaries: dict[str, CarriedTrack],
    pipeline: FacePipeline,
    index: ExactIndex,
    threshold: float,
    fusion: FusionPolicy,
    out: BatchOutcome,
    now: float,
) -> list[Match]:
    plans: list[tuple[Track[_View], CarriedTrack, list[_View]]] = []
    for tr in tracks:
        if tr.carried:
            out.continued += 1
        else:
            out.passings += 1
        s = _summary(tr, summaries.get(tr.tid), now)
        if fusion.enabled:
            summaries[s.tid] = s
        seen = max(v.captured_at for v in tr.items)
        if s.subject_id is not None and seen.timestamp() - s.sustained_t >= SUSTAIN_EVERY_S:
            out.sustained.append((s.subject_id, seen))
            s.sustained_t = seen.timestamp()
        views = _to_embed(tr, s, fusion)
        if views:
            plans.append((tr, s, views))
    if not plans:
        return []
    t0 = time.perf_counter()
    crops = [pipeline.steadied_crop(v.work, _shifted(v.face.detection, v.origin), v.face.crop,
                                    v.scale)
             for _, _, views in plans for v in views if v.work is not None]
    out.timings_ms["mirror"] += (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    embeddings = pipeline.embed(crops)
    out.timings_ms["embed"] += (time.perf_counter() - t0) * 1000
    out.faces_embedded += len(crops)
    t0 = time.perf_counter()
    fused, offset = [], 0
    for _, s, views in plans:
        mean = embeddings[offset : offset + len(views)].mean(axis=0)
        fused.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        offset += len(views)
        s.embedded += len(views)
        s.decisions += 1
        s.best_q = max(s.best_q, max(v.face.quality for v in views))
    out.decisions += len(plans)
    results: dict[str, Match] = {}
    for (tr, s, views), candidates in zip(plans, index.search(np.stack(fused)), strict=True):
        top = decide(candidates, threshold)
        if top is None:
            continue  # nobody on the watchlist: the embedding and crops are forgotten here
        s.subject_id = top.subject_id
        s.sustained_t = max(v.captured_at for v in tr.items).timestamp()
        view = views[0]
        held = results.get(top.subject_id)
        if held is None or top.score > held.score:
            b = view.face.detection.box
            results[top.subject_id] = Match(
                top.subject_id, top.score, view.frame_index, view.captured_at,
                (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                context_crop(view.work, _shifted(view.face.detection, view.origin).box)
                if view.work is not None else np.zeros((1, 1, 3), np.uint8),
                len(tr.items), tr.tid,
            )
    out.timings_ms["match"] += (time.perf_counter() - t0) * 1000
    return sorted(results.values(), key=lambda m: -m.score)


def _shifted(det: Detection, origin: tuple[int, int]) -> Detection:
    """The detection in the coordinates of a region whose top-left is `origin`."""
    o = np.asarray(origin, np.float32)
    return Detection(det.box - np.tile(o, 2), det.score, det.landmarks - o)


def context_crop(image: np.ndarray, box: np.ndarray, margin: float = 0.6) -> np.ndarray:
    """The face box grown by `margin` on each side, clipped to the frame: what an officer sees."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    h_img, w_img = image.shape[:2]
    xa, ya = max(0, int(x1 - margin * w)), max(0, int(y1 - margin * h))
    xb, yb = min(w_img, int(x2 + margin * w)), min(h_img, int(y2 + margin * h))
    return image[ya:yb, xa:xb].copy()
