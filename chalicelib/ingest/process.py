"""Processing of one frame batch of one camera: the pure core (no AWS). The worker wraps it
with storage. Each step is a module of its own:

    decode -> detect, the whole frame or regions around tracks (keyframes.py)
           -> assign the faces to tracks, one to one (assign.py)
           -> carry tracks across batches, in any order (carry.py)
           -> choose each track's views (views.py) -> embed and fuse them (embed.py)
           -> decide: one 1:N decision per track, the best track per subject (matches.py)

Privacy by construction: faces, crops and embeddings live only inside this function; what leaves
it is counts, timings, the matches, and the camera's track state (ingest/continuity.py:
geometry, times, quality and decision flags; no embedding, no pixels, no score).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial

import numpy as np

from chalicelib.ingest.assign import assign_regions, assign_whole
from chalicelib.ingest.batch_format import Frame
from chalicelib.ingest.carry import CameraCarry
from chalicelib.ingest.continuity import CameraTracks
from chalicelib.ingest.embed import Plan, embed_views, fuse
from chalicelib.ingest.keyframes import detect_regions, detect_whole, is_keyframe, wanting_view
from chalicelib.ingest.matches import decide_plans
from chalicelib.ingest.outcome import BatchOutcome
from chalicelib.ingest.policy import FusionPolicy
from chalicelib.ingest.views import View, keep_best, to_embed
from chalicelib.matching.decision import Match as Match  # re-exported: callers import it here
from chalicelib.matching.index import ExactIndex
from chalicelib.vision.decode import FrameDecodeError, decode_jpeg
from chalicelib.vision.pipeline import FacePipeline
from chalicelib.vision.track import Track, Tracker

DEFAULT_FUSION = FusionPolicy()  # frozen: one default object serves every call


def process_frames(
    frames: Iterable[Frame],
    pipeline: FacePipeline,
    index: ExactIndex,
    threshold: float,
    max_pixels: int,
    fusion: FusionPolicy = DEFAULT_FUSION,
    carried: CameraTracks | None = None,
    now: float | None = None,
) -> BatchOutcome:
    """One alert per subject per passing, from the person's best views.

    `carried`: the camera's state after its earlier batches (None: this batch stands alone);
    the state after this batch is returned in `outcome.carry`. `now`: wall clock, for expiry.
    """
    now = time.time() if now is None else now
    out = BatchOutcome()
    camera = CameraCarry.resume(carried, now, fusion.enabled)
    tracker: Tracker[View] = Tracker(fusion.tracker, camera.open_tracks())
    for frame in frames:
        image = _decode(frame, max_pixels, out)
        if image is not None:  # detect (whole frame or regions), assign to tracks
            _detect_and_assign(frame, image, pipeline, tracker, camera, fusion, out)
    tracks = [tr for tr in tracker.tracks() if tr.items]  # those with a face in this batch
    out.tracks = len(tracks)
    camera.link_backwards(tracks, fusion.tracker)  # carry across batches, in any order
    plans = _choose_views(tracks, camera, fusion, now, out)
    if plans:
        embeddings = embed_views(plans, pipeline, out)
        with out.timed("match"):  # decide
            out.matches = decide_plans(plans, fuse(plans, embeddings), index, threshold, out)
    out.carry = camera.carried_out()
    return out


def _decode(frame: Frame, max_pixels: int, out: BatchOutcome) -> np.ndarray | None:
    """The frame's pixels, or None (counted as skipped, with the reason) when it has none."""
    out.frames_total += 1
    if frame.data is None:
        out.frames_skipped[frame.problem or "unreadable"] += 1
        return None
    with out.timed("decode"):  # refusals count too: what a hostile frame cost is visible
        try:
            image = decode_jpeg(frame.data, max_pixels)
        except FrameDecodeError as exc:
            out.frames_skipped[exc.reason] += 1
            return None
    out.frames_processed += 1
    return image


def _detect_and_assign(frame: Frame, image: np.ndarray, pipeline: FacePipeline,
                       tracker: Tracker[View], camera: CameraCarry, fusion: FusionPolicy,
                       out: BatchOutcome) -> None:
    """One frame: detect (the whole frame, or around the tracks that want a view), link the
    faces to tracks, and keep only each track's best views' pixels."""
    t = frame.captured_at.timestamp()
    view_of = partial(View.of, frame, image, pipeline.detector.input_scale(*image.shape[:2]))
    tracker.leave(t, image.shape[1], image.shape[0])
    wanting = wanting_view(tracker.live, t, camera.summaries, fusion)
    if is_keyframe(t, camera.state.last_key_t, wanting, image.shape, fusion):
        faces = detect_whole(pipeline, image, out)
        camera.key_frame(t)
        assign_whole(tracker, t, faces, view_of, fusion.enabled)
    else:
        found = detect_regions(pipeline, image, wanting, t, out)
        assign_regions(wanting, t, found, view_of, fusion.tracker)
    keep_best(tracker.live, t, fusion.best_k)


def _choose_views(tracks: list[Track[View]], camera: CameraCarry, fusion: FusionPolicy,
                  now: float, out: BatchOutcome) -> list[Plan]:
    """Every track's summary goes on to the next batch; those with views worth embedding now
    are planned for a decision."""
    plans = []
    for tr in tracks:
        summary = camera.after_batch(tr, now, out)
        if views := to_embed(tr, summary, fusion):
            plans.append(Plan(tr, summary, views))
    return plans
