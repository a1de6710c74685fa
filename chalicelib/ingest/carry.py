"""Tracks carried across a camera's batches, which arrive late, twice or out of order (the state
itself and why: ingest/continuity.py). A batch resumes the camera's open tracks, so a passing
that goes on is continued, not decided again; a batch processed after a later one links its new
tracks to the carried ones they precede or fall inside; and every track's summary (geometry,
times, decision flags) goes on to the next batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chalicelib.ingest.continuity import CameraTracks, CarriedTrack
from chalicelib.ingest.outcome import BatchOutcome
from chalicelib.ingest.views import View
from chalicelib.vision.track import Track, TrackerPolicy, centre, link_cost, size

# A matched passing still in view refreshes its sighting (alerts/sightings.py) this often: well
# inside the re-alert window, and not one write per batch.
SUSTAIN_EVERY_S = 15.0


@dataclass
class CameraCarry:
    """The camera's tracks while one batch is processed. Without fusion nothing is carried:
    `summaries` stays empty and each track is summarised afresh."""

    state: CameraTracks
    summaries: dict[str, CarriedTrack]  # by track id
    enabled: bool

    @classmethod
    def resume(cls, carried: CameraTracks | None, now: float, enabled: bool) -> CameraCarry:
        """The state after the camera's earlier batches (None: none), less what has expired."""
        state = (carried or CameraTracks()).pruned(now)
        return cls(state, {t.tid: t for t in state.tracks} if enabled else {}, enabled)

    def open_tracks(self) -> list[Track[View]]:
        """The carried tracks, to continue: geometry only, no views."""
        return [as_track(s) for s in self.summaries.values()]

    def key_frame(self, t: float) -> None:
        """A full-frame detection at capture time t (batches may come in any order)."""
        last = self.state.last_key_t
        self.state.last_key_t = t if last is None else max(last, t)

    def link_backwards(self, tracks: list[Track[View]], policy: TrackerPolicy) -> None:
        """A batch processed after a later one of the same camera (SQS does not keep order):
        its new tracks may be the beginning, or a middle part, of tracks already carried. Such
        a track takes the carried one's id, and so its decision flags."""
        if not self.enabled:
            return
        taken = {tr.tid for tr in tracks if tr.carried}
        for tr in tracks:
            if tr.carried:
                continue
            costs = [(c, s.tid) for s in self.summaries.values()
                     if s.tid not in taken and (c := span_cost(s, tr, policy)) is not None]
            if costs:  # its summary then extends backwards (summarise)
                tid = min(costs)[1]
                taken.add(tid)
                tr.tid, tr.carried = tid, True

    def after_batch(self, tr: Track[View], now: float, out: BatchOutcome) -> CarriedTrack:
        """The track's summary after this batch, kept for the next; counts the passing, and a
        passing that matched earlier and goes on is reported for its sighting."""
        if tr.carried:
            out.continued += 1
        else:
            out.passings += 1
        s = summarise(tr, self.summaries.get(tr.tid), now)
        if self.enabled:
            self.summaries[s.tid] = s
        seen = max(v.captured_at for v in tr.items)
        if s.subject_id is not None and seen.timestamp() - s.sustained_t >= SUSTAIN_EVERY_S:
            out.sustained.append((s.subject_id, seen))
            s.sustained_t = seen.timestamp()
        return s

    def carried_out(self) -> CameraTracks:
        """The state for the camera's next batch (empty without fusion)."""
        if not self.enabled:
            return CameraTracks()
        self.state.tracks = list(self.summaries.values())
        return self.state


def as_track(s: CarriedTrack) -> Track[View]:
    return Track(
        tid=s.tid, first_t=s.first_t, last_t=s.last_t,
        first_box=np.asarray(s.first_box, np.float32), last_box=np.asarray(s.last_box, np.float32),
        velocity=None if s.velocity is None else np.asarray(s.velocity, np.float32),
        carried=True,
    )


def span_cost(s: CarriedTrack, tr: Track[View], policy: TrackerPolicy) -> float | None:
    """How well a track of this batch fits before, or inside a gap of, a carried track."""
    if 0 < s.first_t - tr.last_t <= policy.max_gap_s:
        return link_cost(as_track(s), tr.last_t, tr.last_box, policy)
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


def summarise(tr: Track[View], held: CarriedTrack | None, now: float) -> CarriedTrack:
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
