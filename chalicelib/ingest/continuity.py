"""What one frame batch of a camera passes to the next: the camera's open tracks. Pure core.

A person walking past crosses several batches; without this each batch would start their track,
embed them and decide on them again. The state carried is, by construction, what the privacy
rule allows about a person who matched nobody: geometry (boxes, velocity), times, the quality of
the best view embedded so far, and decision flags (how many faces were embedded, how many
decisions made). No embedding, no pixels, no score. Only a track that matched (an alert was
raised for it) also carries the watchlist subject's id, so later batches continue that alert.

Every track is forgotten `TRACK_TTL_S` after the last batch that saw it was processed (wall
clock), whatever capture times say; the store gives the whole item the same expiry.

Batches of one camera arrive late, twice or out of order (standard SQS, S3 notifications): a
track can be extended backwards as well as forwards, a batch already applied is recognised by its
id (an item of its own, store/tables.AppliedBatch, put in the same transaction as the state), and
two batches processed at once merge their states (see `merge`). A FIFO queue with one
message group per camera would give order, but S3 cannot notify a FIFO queue ("FIFO queues are
not allowed when enabling an SQS queue as the event notification destination", CloudFormation
AWS::S3::Bucket QueueConfiguration), and it would still redeliver after a failure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

TRACK_TTL_S = 60.0
# Applied batch ids (a hash of the object key and ETag: about objects, not people) let a late
# delivery of a batch skip what it already did. A batch can be applied only while its object
# exists, and no object under frames/ outlives the bucket's lifecycle rule (1 day, counted to
# the next midnight UTC: under 2 days); the queue's redeliveries (queue_timing.
# longest_redelivery_s, 36 min) and a dead-lettered batch's hold for redrive come well inside
# that. Their own items, not this state: the state every batch rewrites stays a few hundred
# bytes (docs/bandwidth.md), and an id is not lost when the camera goes quiet for a minute.
APPLIED_TTL_S = 2 * 24 * 3600.0
MAX_TRACKS = 256  # a crowd in front of one camera; the oldest are dropped first
FORMAT = 2  # 2: batch ids moved out of the state


@dataclass
class CarriedTrack:
    tid: str  # random, names nobody
    first_t: float  # capture times, epoch seconds
    last_t: float
    first_box: list[float]
    last_box: list[float]
    velocity: list[float] | None  # px per second; None until seen twice
    seen_at: float  # wall clock of the last batch that saw the track
    best_q: float = 0.0  # quality of the best face embedded so far (0: none yet)
    embedded: int = 0  # faces embedded, all batches together
    decisions: int = 0
    subject_id: str | None = None  # only once the track matched: an alert exists for it
    sustained_t: float = 0.0  # capture time up to which the match's sighting was extended

    @property
    def matched(self) -> bool:
        return self.subject_id is not None


# What a stored track may hold: the privacy tests check the stored items against this.
TRACK_KEYS = frozenset(f.name for f in fields(CarriedTrack))
STATE_KEYS = frozenset({"format", "tracks", "last_key_t"})


@dataclass
class CameraTracks:
    tracks: list[CarriedTrack] = field(default_factory=list)
    last_key_t: float | None = None  # capture time of the last full-frame detection

    def pruned(self, now: float) -> CameraTracks:
        """Without what has expired by wall clock `now`."""
        tracks = [t for t in self.tracks if now - t.seen_at <= TRACK_TTL_S]
        tracks = sorted(tracks, key=lambda t: t.last_t)[-MAX_TRACKS:]
        return CameraTracks(tracks, self.last_key_t if tracks else None)

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "tracks": [_rounded(asdict(t)) for t in self.tracks],
            "last_key_t": self.last_key_t,
        }
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> CameraTracks:
        if not text:
            return cls()
        doc = json.loads(text)
        if doc.get("format") != FORMAT:
            return cls()  # a state from another version: start afresh, lose nothing but links
        tracks = [CarriedTrack(**{k: v for k, v in t.items() if k in TRACK_KEYS})
                  for t in doc.get("tracks", [])]
        return cls(tracks, doc.get("last_key_t"))


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    """Boxes to 0.1 px, times to the millisecond: enough to link, no more."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, list):
            out[k] = [round(float(x), 1) for x in v]
        elif isinstance(v, float):
            out[k] = round(v, 3)
        else:
            out[k] = v
    return out


def _combined(a: CarriedTrack, b: CarriedTrack) -> CarriedTrack:
    """One passing seen by two batches processed at once (or twice): the union of both."""
    first = a if a.first_t <= b.first_t else b
    last = a if a.last_t >= b.last_t else b
    return CarriedTrack(
        tid=a.tid,
        first_t=first.first_t, first_box=first.first_box,
        last_t=last.last_t, last_box=last.last_box, velocity=last.velocity or first.velocity,
        seen_at=max(a.seen_at, b.seen_at),
        best_q=max(a.best_q, b.best_q),
        embedded=max(a.embedded, b.embedded),
        decisions=max(a.decisions, b.decisions),
        subject_id=a.subject_id or b.subject_id,
        sustained_t=max(a.sustained_t, b.sustained_t),
    )


def merge(stored: CameraTracks, mine: CameraTracks) -> CameraTracks:
    """The state after `mine` (computed from an older read) meets what another batch wrote."""
    by_id = {t.tid: t for t in stored.tracks}
    for t in mine.tracks:
        held = by_id.get(t.tid)
        by_id[t.tid] = t if held is None else _combined(held, t)
    keys = [k for k in (stored.last_key_t, mine.last_key_t) if k is not None]
    return CameraTracks(list(by_id.values()), max(keys) if keys else None)
