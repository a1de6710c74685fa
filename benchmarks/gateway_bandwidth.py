"""Gateway bandwidth (not a test): what each frame size and JPEG quality costs in bytes, uplink,
gateway CPU and small-face recall, and what one camera-hour costs on AWS per batch size.

For each cell of --sizes (the gateway's max_side) x --qualities (JPEG quality), the gateway's own
`encode` (resize to max_side with INTER_AREA, then JPEG) is run on real frames:

- clip: the real clip (../shared/data/video/short_hamilton_clip.mp4, 640x360, 29.97 fps)
  sampled at 5 fps as the gateway does. At 640x360 no max_side shrinks it: its bytes vary with
  the quality only.
- clip->1080: the same frames upscaled (bicubic) to 1920x1080 before the gateway sees them, the
  size of a 1080p camera. An upscaled frame has less fine detail than a sensor's: its bytes are
  a lower bound, its CPU a fair figure (the cost follows the pixels).
- 1080p stills: real photographs at full-HD detail: obama-1080p.jpg and the crowd photos whose
  cover-crop to 1920x1080 needs at most --max-upscale (resized, centre-cropped to 16:9).
- scenes: detect_recall.py's part 2: each of the 9 hand-labelled dlib VOC photos scaled so that
  its median face is --face-px wide and pasted on a grey 1920x1080 frame. These are encoded,
  decoded as the worker decodes (vision/decode.py) and detected as the worker detects (the
  Settings defaults: max_side 960, min_side 448), and recall is counted with detect_recall.py's
  own functions: IoU >= 0.4 with a label, detector score >= 0.9 (the quality gate), over all
  labelled faces ("detected"); "usable" also needs the box to be >= min_face_px (32) in the
  uploaded frame, where the quality gate measures it. "native" also detects each frame at its
  own size (no 960 cap), to show what the uplink keeps that the worker's detector then loses.
  --embed runs the worker's whole face path (gate, mirror pass, align, embed) on each cell's
  frames and compares each face's embedding with the source frame's (cosine).

CPU is getrusage(RUSAGE_SELF) user + sys of this process, all threads, summed over each call;
OpenCV and onnxruntime run on 1 thread. Wall time is never used.

Uplink: payload Mbit/s = mean JPEG bytes x fps x 8 / 1e6; "wire" adds the batch container
(pack_batch's ZIP and manifest, measured), the presigned POST's multipart form (measured on a
grant generated offline with a session token, as the API's role credentials make one), an
estimated 600 bytes of HTTP request and response headers per batch, and 3 % for TCP/IP and TLS
framing (an estimate).

The cost of one camera-hour (on unless --no-cost) is a model, not a measurement: request
counts per batch read from chalicelib/ingest (docs/bandwidth.md lists where), the worker's CPU
per frame from docs/performance.md, the function memory from .chalice/config.json, the camera
track item's size simulated with the real CameraTracks.to_json, the deployment row's with the
real fold_heartbeat for --cameras cameras, and eu-west-2 on-demand prices as published (not
fetched: see PRICES). Applied batch ids are items of their own (store/tables.AppliedBatch): one
small put per batch, kept continuity.APPLIED_TTL_S, deleted by TTL (free), stored meanwhile.

    .venv/bin/python benchmarks/gateway_bandwidth.py [--sizes 640 960 1280 1920]
        [--qualities 70 80 90] [--scenes 9] [--stills 6] [--clip-frames 46]
        [--face-px 40 56 80 112] [--no-native] [--no-recall] [--embed] [--no-cost]
        [--cost-batches 1 2 3 4 8] [--cameras 4] [--json FILE]

Needs ../shared/data (internal test data); says "skipped: ..." and exits 0 without it.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import detect_recall as dr
import numpy as np

from chalicelib.gateway import GatewayOptions, encode
from chalicelib.ingest import continuity
from chalicelib.ingest.batch_format import pack_batch
from chalicelib.ingest.continuity import CameraTracks, CarriedTrack
from chalicelib.ops.camera_health import fold_heartbeat
from chalicelib.settings import Settings
from chalicelib.vision.decode import decode_jpeg
from chalicelib.vision.detect import RetinaFaceDetector
from chalicelib.vision.models import default_detector_spec

REPO = Path(__file__).resolve().parents[1]
VIDEO = dr.DATA / "video"
CLIP = VIDEO / "short_hamilton_clip.mp4"
STILL_1080 = VIDEO / "obama-1080p.jpg"
FRAME_WH = (1920, 1080)  # the camera: full HD
SIZES = [640, 960, 1280, 1920]
QUALITIES = [70, 80, 90]
FPS = (5.0, 2.0)
HTTP_HEADERS_B = 600  # request line + headers + the 204's headers, per POST (estimate)
FRAMING = 1.03  # TCP/IP headers (40 B per 1,460 B segment) and TLS records (estimate)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class Timed:
    """Sum of CPU seconds over calls, and their count."""

    s: float = 0.0
    n: int = 0

    def __call__(self, fn: Callable[[], Any]) -> Any:
        t0 = cpu_s()
        out = fn()
        self.s += cpu_s() - t0
        self.n += 1
        return out

    @property
    def ms(self) -> float:
        return 1000 * self.s / self.n if self.n else float("nan")


# ---------------------------------------------------------------------------------------------
# Sources


@dataclass
class Clip:
    frames: dict[float, list[np.ndarray]]  # fps -> sampled frames
    source_frames: int
    decode_ms_per_source_frame: float
    native_fps: float
    wh: tuple[int, int]


def read_clip(path: Path, fps_list: Sequence[float], limit: int) -> Clip:
    """Every frame decoded (a gateway decodes them all to sample some), CPU counted; frames kept
    at each rate on a grid of 1/fps by container timestamps (half a source frame of slack)."""
    cap = cv2.VideoCapture(str(path))
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    nxt = {f: -math.inf for f in fps_list}
    kept: dict[float, list[np.ndarray]] = {f: [] for f in fps_list}
    dec, first, n = Timed(), None, 0
    while True:
        ok, frame = dec(cap.read)
        if not ok:
            dec.n -= 1  # the read that found the end decoded nothing
            break
        t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        first = t if first is None else first
        t -= first
        n += 1
        for f in fps_list:
            if t >= nxt[f] - 0.5 / native:
                if nxt[f] == -math.inf:
                    nxt[f] = t
                while nxt[f] - 0.5 / native <= t:
                    nxt[f] += 1.0 / f
                if len(kept[f]) < limit:
                    kept[f].append(frame)
    cap.release()
    h, w = kept[fps_list[0]][0].shape[:2]
    return Clip(kept, n, dec.ms, native, (w, h))


def cover(image: np.ndarray, wh: tuple[int, int]) -> np.ndarray:
    """Resized to cover wh, centre-cropped to it."""
    w, h = wh
    ih, iw = image.shape[:2]
    f = max(w / iw, h / ih)
    if abs(f - 1) > 1e-9:
        image = cv2.resize(image, (round(iw * f), round(ih * f)),
                           interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
    ih, iw = image.shape[:2]
    y0, x0 = (ih - h) // 2, (iw - w) // 2
    return np.ascontiguousarray(image[y0:y0 + h, x0:x0 + w])


def stills_1080(limit: int, max_upscale: float) -> list[tuple[str, np.ndarray]]:
    out = []
    for p in [STILL_1080, *sorted(dr.CROWDS.glob("*.jpg"))]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            continue
        h, w = img.shape[:2]
        if max(FRAME_WH[0] / w, FRAME_WH[1] / h) <= max_upscale:
            out.append((p.name, cover(img, FRAME_WH)))
    return out[:limit]


# ---------------------------------------------------------------------------------------------
# Per cell


@dataclass
class Cell:
    max_side: int
    quality: int
    wh: tuple[int, int] = (0, 0)  # a 1920x1080 frame after the gateway's resize
    bytes_clip: float = 0.0  # 640x360 clip frames, 5 fps
    bytes_clip1080: float = 0.0  # clip upscaled to 1080p (a lower bound)
    bytes_stills: float = 0.0  # real 1080p stills
    bytes_scenes: float = 0.0  # detect_recall's grey canvases (mostly flat grey)
    enc_ms_clip: float = 0.0  # gateway resize+encode, CPU-ms per frame: 640x360 source
    enc_ms_1080: float = 0.0  # ... 1920x1080 source (clip->1080 and stills together)
    dec_ms_worker: float = 0.0  # worker's JPEG decode (vision/decode.py), 1080p stills
    recall: dict[str, Any] = field(default_factory=dict)  # detector -> face px -> counts
    det_ms: dict[str, float] = field(default_factory=dict)  # detector CPU-ms per frame
    embed: dict[str, float] = field(default_factory=dict)  # --embed: the whole path vs source

    def mbit(self, fps: float, key: str = "bytes_stills") -> float:
        return getattr(self, key) * fps * 8 / 1e6


def encoded_size(wh: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = wh
    s = max_side / max(w, h)
    return (round(w * s), round(h * s)) if s < 1 else (w, h)


def detect_mapped(det: RetinaFaceDetector, image: np.ndarray, to_source: float) -> dr.Found:
    """detect_recall.run on the decoded frame, its boxes scaled back to the source frame."""
    f = dr.run(det, image)
    return dr.Found(f.boxes * np.float32(to_source), f.scores, f.cpu_ms)


def recall_of(dets: dict[str, RetinaFaceDetector], scenes: dict[float, list[dr.Case]],
              frame_of: Callable[[np.ndarray], np.ndarray], timers: dict[str, Timed],
              min_px: float) -> dict[str, dict[str, dict[str, list[int]]]]:
    """Per detector and face size: [found, of] labelled faces, "detected" (score >= 0.9, IoU >=
    0.4: detect_recall's recall) and "usable" (also >= min_px in the frame the worker received:
    the quality gate measures faces in the decoded frame's pixels)."""
    frames = {px: [(c, frame_of(c.image)) for c in cases] for px, cases in scenes.items()}
    out: dict[str, dict[str, dict[str, list[int]]]] = {}
    for name, det in dets.items():
        out[name] = {}
        warm: set[tuple[int, ...]] = set()
        for px, pairs_in in frames.items():
            pairs, gated = [], []
            for c, img in pairs_in:
                k = c.image.shape[1] / img.shape[1]  # decoded frame -> source frame
                if img.shape not in warm:  # the first run at a new shape allocates
                    dr.run(det, img)
                    warm.add(img.shape)
                found = timers[name](lambda d=det, i=img, k=k: detect_mapped(d, i, k))
                big = dr.short_side(found.boxes) >= min_px * k
                pairs.append((c, found))
                gated.append((c, dr.Found(found.boxes[big], found.scores[big], found.cpu_ms)))
            hits, total, _ = dr.recall(pairs, dr.LABEL_IOU, dr.GATE_SCORE)
            usable, _, _ = dr.recall(gated, dr.LABEL_IOU, dr.GATE_SCORE)
            out[name][f"{px:g}"] = {"detected": [hits, total], "usable": [usable, total]}
    return out


def run_cell(m: int, q: int, clip: Clip, stills: list[tuple[str, np.ndarray]],
             scenes: dict[float, list[dr.Case]], dets: dict[str, RetinaFaceDetector],
             s: Settings, pipeline: Any = None, ref: dict[float, list[Any]] | None = None,
             ) -> Cell:
    opts = GatewayOptions(max_side=m, jpeg_quality=q)
    cell = Cell(m, q, encoded_size(FRAME_WH, m))
    t_clip, t_1080, t_dec = Timed(), Timed(), Timed()
    cell.bytes_clip = statistics.mean(
        len(t_clip(lambda f=f: encode(f, opts))) for f in clip.frames[5.0])
    up = []
    for f in clip.frames[5.0]:
        big = cv2.resize(f, FRAME_WH, interpolation=cv2.INTER_CUBIC)  # not timed
        up.append(len(t_1080(lambda b=big: encode(b, opts))))
    cell.bytes_clip1080 = statistics.mean(up)
    enc = [t_1080(lambda i=img: encode(i, opts)) for _, img in stills]
    cell.bytes_stills = statistics.mean(len(b) for b in enc)
    for b in enc:
        t_dec(lambda b=b: decode_jpeg(b, s.max_frame_pixels))
    cell.enc_ms_clip, cell.enc_ms_1080, cell.dec_ms_worker = t_clip.ms, t_1080.ms, t_dec.ms
    cell.bytes_scenes = statistics.mean(
        len(encode(c.image, opts)) for cs in scenes.values() for c in cs)
    def through(img: np.ndarray) -> np.ndarray:
        return decode_jpeg(encode(img, opts), s.max_frame_pixels)

    if dets:
        timers = {k: Timed() for k in dets}
        cell.recall = recall_of(dets, scenes, through, timers, s.min_face_px)
        cell.det_ms = {k: t.ms for k, t in timers.items()}
    if pipeline is not None and ref is not None:
        cell.embed = embed_drift(pipeline, scenes, through, ref)
    return cell


def embed_drift(pipeline: Any, scenes: dict[float, list[dr.Case]],
                frame_of: Callable[[np.ndarray], np.ndarray],
                ref: dict[float, list[Any]]) -> dict[str, float]:
    """The worker's whole path (detect, full quality gate, mirror pass, align, embed) on each
    encoded frame, against the same path on the source frame: the share of the source's gated
    faces still gated in, and the cosine between each one's two embeddings."""
    kept = total = 0
    cos: list[float] = []
    for px, cases in scenes.items():
        for c, src in zip(cases, ref[px], strict=True):
            img = frame_of(c.image)
            k = c.image.shape[1] / img.shape[1]
            faces = pipeline.analyze(img).faces
            boxes = np.array([f.detection.box for f in faces], np.float32).reshape(-1, 4) * k
            for f0 in src.faces:
                total += 1
                if not len(boxes):
                    continue
                ious = dr.iou_matrix(np.asarray(f0.detection.box, np.float32)[None], boxes)[0]
                j = int(np.argmax(ious))
                if ious[j] >= dr.AGREE_IOU:
                    kept += 1
                    cos.append(float(np.dot(f0.embedding, faces[j].embedding)))
    return {"kept": kept, "of": total,
            "cos_mean": float(np.mean(cos)) if cos else float("nan"),
            "cos_p05": float(np.percentile(cos, 5)) if cos else float("nan"),
            "cos_min": float(np.min(cos)) if cos else float("nan")}


# ---------------------------------------------------------------------------------------------
# Uplink overhead per batch


def batch_overhead(frame_bytes: int, n: int) -> dict[str, int]:
    """Bytes a batch of n frames adds over its JPEGs: container, multipart form, headers."""
    import boto3  # the grant is made offline: presigning needs no network
    import requests

    jpeg = b"\xff" * frame_bytes
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    dep, cam = str(uuid.UUID(int=1)), "cam-01"
    body = pack_batch(dep, cam, 123456, [(t0 + timedelta(seconds=i / 5), jpeg)
                                         for i in range(n)])
    s3 = boto3.session.Session(
        aws_access_key_id="ASIA" + "X" * 16, aws_secret_access_key="x" * 40,
        aws_session_token="x" * 1000, region_name="eu-west-2",
    ).client("s3")
    prefix = f"frames/{dep}/{cam}/"
    post = s3.generate_presigned_post(
        Bucket="lfr-prod-frames-123456789012", Key=prefix + "${filename}",
        Conditions=[["starts-with", "$key", prefix], ["content-length-range", 1, 64 << 20]],
        ExpiresIn=3600)
    key = prefix + "000000000123456.lfrb"
    req = requests.Request("POST", post["url"], data={**post["fields"], "key": key},
                           files={"file": (key.rsplit("/", 1)[-1], body)}).prepare()
    form = len(req.body) - len(body)
    return {"container": len(body) - n * frame_bytes, "form": form, "headers": HTTP_HEADERS_B}


def wire_mbit(frame_bytes: float, fps: float, n: int, over: dict[str, int]) -> float:
    per_batch = n * frame_bytes + sum(over.values())
    return per_batch * FRAMING * (fps / n) * 8 / 1e6


# ---------------------------------------------------------------------------------------------
# Cost of one camera-hour (a model: see docs/bandwidth.md)

# eu-west-2 (London), on-demand, USD, as published; NOT fetched (no internet on this machine).
PRICES = {
    "lambda_gb_s_arm64": 0.0000133334,  # https://aws.amazon.com/lambda/pricing/
    "lambda_request": 0.20 / 1e6,
    "s3_put": 0.0053 / 1000,  # PUT, COPY, POST, LIST; https://aws.amazon.com/s3/pricing/
    "s3_get": 0.00042 / 1000,  # GET, SELECT and all other requests
    "s3_delete": 0.0,  # DELETE and CANCEL requests are free
    "s3_gb_month": 0.024,  # S3 Standard, first 50 TB
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk; aws.amazon.com/sqs/pricing/
    "ddb_wru": 0.7423 / 1e6,  # on-demand, Standard table class;
    "ddb_rru": 0.1485 / 1e6,  # https://aws.amazon.com/dynamodb/pricing/on-demand/
    # Storage, Standard table class: the figure I know is N. Virginia's ($0.25 per GB-month);
    # London's is a little higher. Applied batch ids are the only items that pile up.
    "ddb_gb_month": 0.25,
    "sns_publish": 0.50 / 1e6,  # https://aws.amazon.com/sns/pricing/ (and per mobile push)
    # REST API, first tier: the figure I know is N. Virginia's; London's may be a little higher.
    "api_gateway_rest_request": 3.50 / 1e6,  # https://aws.amazon.com/api-gateway/pricing/
}
PRICES_AS_OF = "prices as published, not fetched, on 2026-12-07"
# Worker CPU per frame, docs/performance.md: the clip, deployed settings (71.6 frames/CPU-s),
# and the walk-by's whole process (16.6 frames/CPU-s: 1280x720, 2-4 faces on screen, uploads and
# AWS client side included: an upper bound for the function).
FRAME_MS = {"clip": 1000 / 71.6, "walk-by, upper bound": 1000 / 16.6}
FIXED_CPU_MS = 20.0  # per batch in the function: botocore for 6 requests (15-28 measured)
IO_WAIT_MS = 70.0  # per batch: waiting on S3 GET + DELETE and 4 DynamoDB calls (assumed)
OBJECT_LIFE_S = 1.0  # upload -> notification -> worker -> delete (assumed; 0.16 s locally)
DEPLOYMENT_BASE_B = 1024  # the Deployment row without cameras' health or look-alikes (estimate)
HEARTBEAT_S = 5.0  # Settings.gateway_heartbeat_s: one API call per camera this often
HEARTBEAT_LAMBDA = (512, 50.0)  # api_handler MB (config.json default), ms per call (assumed)
SQS_PER_BATCH = 3  # S3's SendMessage, the event source mapping's Receive and Delete
# S3 POST (gateway), SQS x3, Lambda invoke, S3 GET + DELETE, DynamoDB x4 (idempotency put and
# update, BatchGetItem, TransactWriteItems): 11 billed requests per batch.
REQUESTS_PER_BATCH = 11


def lambda_memory_mb() -> tuple[int, str]:
    cfg = json.loads((REPO / ".chalice" / "config.json").read_text())
    fn = cfg["stages"]["prod"]["lambda_functions"]["frames_worker"]
    return int(fn.get("lambda_memory_size", cfg["lambda_memory_size"])), \
        cfg.get("lambda_architecture", "x86_64")


def tracks_item_bytes(people: int = 3) -> int:
    """The camera's CameraTracks item with `people` open tracks (batch ids are not in it)."""
    now = time.time()
    state = CameraTracks()
    state.tracks = [
        CarriedTrack(tid=uuid.uuid4().hex[:12], first_t=now - 3.1 - k, last_t=now - 0.2,
                     first_box=[101.3, 200.4, 161.9, 270.2], last_box=[801.3, 210.4, 861.9,
                     281.2], velocity=[212.4, 3.1], seen_at=now, best_q=0.71, embedded=2,
                     decisions=1)
        for k in range(people)
    ]
    state.last_key_t = now - 0.2
    text = state.pruned(now).to_json()
    # DynamoDB item size: attribute names + values (strings as UTF-8, numbers ~ digits / 2 + 1).
    key = f"{uuid.UUID(int=1)}#cam-01"
    size = (len("camera_key") + len(key) + len("version") + 4 + len("state") + len(text)
            + len("written_at") + 32 + len("expires_at") + 7 + len("sweep") + 3)
    return size


def applied_item_bytes() -> int:
    """One AppliedBatch item: the camera's key, the batch id (16 hex), its expiry."""
    key = f"{uuid.UUID(int=1)}#cam-01"
    return len("camera_key") + len(key) + len("batch_id") + 16 + len("expires_at") + 7


# DynamoDB bills each item's storage with 100 bytes of overhead (its pricing page).
DDB_ITEM_OVERHEAD_B = 100


def deployment_item_bytes(cameras: int) -> int:
    """The Deployment row with `cameras` cameras' health entries (ops/camera_health.py, folded
    from a plausible hour-old heartbeat with the real fold_heartbeat) and frame counters."""
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    report = {
        "run_id": uuid.uuid4().hex[:22], "started_at": (now - timedelta(hours=1)).isoformat(),
        "interval_s": HEARTBEAT_S, "stopped": False, "frames_read": 18000,
        "frames_sent": 17994, "frames_shed": {"thinned": 6}, "batches_sent": 6000,
        "retries": 3, "grant_renewals": 1, "reconnects": 0, "source_state": "streaming",
        "last_capture_at": (now - timedelta(seconds=0.2)).isoformat(), "watching_s": 3600.0,
        "uplink_ms": 182.4, "queued_frames": 0, "frames_shed_total": 6,  # added by api.py
    }
    entry = json.dumps(fold_heartbeat(None, report, now), sort_keys=True)
    per_camera = (len("cam-01") + len(entry)  # camera_health[cam]: the entry as a string
                  + len("cam-01") + 4)  # camera_frames[cam]: a number
    return DEPLOYMENT_BASE_B + 2 * len("camera_health") + cameras * per_camera


@dataclass
class BatchCost:
    n: int
    batches_h: float
    ddb_rru: int
    ddb_wru: int
    tracks_kb: float
    duration_ms: float
    usd: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.usd.values())


def camera_hour(n: int, fps: float, frame_bytes: float, frame_ms: float,
                mem_mb: int, dep_b: int) -> BatchCost:
    p = PRICES
    batches = 3600 * fps / n
    tracks_b, applied_b = tracks_item_bytes(), applied_item_bytes()
    # BatchGetItem, consistent reads, each item rounded up to 4 KB: the deployment, the
    # watchlist (only its version projected, the whole item billed), the camera's tracks, the
    # batch's applied id (absent: a missing item is billed as one read).
    rru = math.ceil(dep_b / 4096) + 1 + math.ceil(tracks_b / 4096) + 1
    wru = (1 + 1  # powertools idempotency: put (in progress), update (completed + result)
           + 2 * math.ceil(tracks_b / 1024)  # TransactWriteItems: tracks put, 2 WRU per KB
           + 2 * math.ceil(applied_b / 1024)  # ... the batch's applied id, put
           + 2 * math.ceil(dep_b / 1024))  # ... and the deployment's counters (whole row)
    # Applied ids held at any time: one per batch for APPLIED_TTL_S (TTL deletes are free).
    applied_gb = batches * continuity.APPLIED_TTL_S / 3600 \
        * (applied_b + DDB_ITEM_OVERHEAD_B) / 1e9
    duration_s = (n * frame_ms + FIXED_CPU_MS + IO_WAIT_MS) / 1000
    gb_s = duration_s * mem_mb / 1024
    month_s = 730 * 3600
    usd = {
        "lambda compute": batches * gb_s * p["lambda_gb_s_arm64"],
        "lambda requests": batches * p["lambda_request"],
        "s3 put": batches * p["s3_put"],
        "s3 get": batches * p["s3_get"],
        "s3 delete": batches * p["s3_delete"],
        "s3 storage": 3600 * fps * frame_bytes / 1e9 * OBJECT_LIFE_S / month_s
        * p["s3_gb_month"],
        "sqs": batches * SQS_PER_BATCH * p["sqs_request"],
        "dynamodb reads": batches * rru * p["ddb_rru"],
        "dynamodb writes": batches * wru * p["ddb_wru"],
        "dynamodb storage": applied_gb * p["ddb_gb_month"] / 730,
    }
    return BatchCost(n, batches, rru, wru, tracks_b / 1024, duration_s * 1000, usd)


def heartbeat_hour(dep_b: int) -> dict[str, float]:
    """One camera's heartbeats for an hour: API request, api_handler, the row's update."""
    p, calls = PRICES, 3600 / HEARTBEAT_S
    mb, ms = HEARTBEAT_LAMBDA
    return {"calls": calls,
            "usd": calls * (p["api_gateway_rest_request"] + p["lambda_request"]
                            + ms / 1000 * mb / 1024 * p["lambda_gb_s_arm64"]
                            + math.ceil(dep_b / 4096) * p["ddb_rru"]  # the row, read
                            + math.ceil(dep_b / 1024) * p["ddb_wru"])}  # the row, updated


def print_cost(frame_bytes: float, fps: float, sizes: Sequence[int],
               cameras: int) -> dict[str, Any]:
    mem_mb, arch = lambda_memory_mb()
    dep_b = deployment_item_bytes(cameras)
    print(f"\nCost of one camera-hour at {fps:g} fps, eu-west-2 on-demand ({PRICES_AS_OF}); "
          f"frames_worker {mem_mb} MB {arch}; {frame_bytes / 1000:.0f} kB per frame; per-batch "
          f"fixed {FIXED_CPU_MS:g} CPU-ms + {IO_WAIT_MS:g} ms waiting on AWS (assumed); "
          f"deployment row {dep_b / 1024:.1f} kB ({cameras} cameras' health on it)")
    out: dict[str, Any] = {"memory_mb": mem_mb, "arch": arch, "prices": PRICES,
                           "prices_note": PRICES_AS_OF, "cameras": cameras,
                           "deployment_item_b": dep_b, "rows": []}
    for scen, frame_ms in FRAME_MS.items():
        cols = ["frames/batch", "batches/h", "fill wait s", "lambda ms/b", "AWS req/h",
                "tracks item kB", "RRU/b", "WRU/b", "lambda GB-s", "lambda req", "s3", "sqs",
                "ddb read", "ddb write", "ddb store", "USD/cam-h"]
        line = " | ".join(f"{c:>{max(8, len(c))}}" for c in cols)
        print(f"\nworker {frame_ms:.1f} CPU-ms per frame ({scen}, docs/performance.md)\n{line}\n"
              f"{'-' * len(line)}")
        for n in sizes:
            c = camera_hour(n, fps, frame_bytes, frame_ms, mem_mb, dep_b)
            u = c.usd
            vals = [n, f"{c.batches_h:,.0f}", f"{(n - 1) / fps:.1f}", f"{c.duration_ms:.0f}",
                    f"{c.batches_h * REQUESTS_PER_BATCH:,.0f}", f"{c.tracks_kb:.1f}",
                    c.ddb_rru, c.ddb_wru, f"{u['lambda compute']:.4f}",
                    f"{u['lambda requests']:.4f}",
                    f"{u['s3 put'] + u['s3 get'] + u['s3 delete'] + u['s3 storage']:.4f}",
                    f"{u['sqs']:.4f}", f"{u['dynamodb reads']:.4f}",
                    f"{u['dynamodb writes']:.4f}", f"{u['dynamodb storage']:.5f}",
                    f"{c.total:.4f}"]
            print(" | ".join(f"{v:>{max(8, len(k))}}" for v, k in zip(vals, cols, strict=True)))
            out["rows"].append({"scenario": scen, "frame_ms": frame_ms, "frames": n,
                                "duration_ms": c.duration_ms,
                                "batches_h": c.batches_h, "rru": c.ddb_rru, "wru": c.ddb_wru,
                                "tracks_item_kb": c.tracks_kb, "usd": u, "total": c.total})
    hb = heartbeat_hour(dep_b)
    out["heartbeat"] = hb
    print(f"\nnot in the table: the gateway's heartbeat, {hb['calls']:.0f} calls per camera-hour "
          f"(API request, api_handler {HEARTBEAT_LAMBDA[0]} MB for {HEARTBEAT_LAMBDA[1]:g} ms, "
          f"the row read and updated): {hb['usd']:.4f} USD per camera-hour")
    return out


# ---------------------------------------------------------------------------------------------


def frac(r: dict[str, list[int]]) -> str:
    """usable/detected, as fractions of the labelled faces."""
    (u, n), (d, _) = r["usable"], r["detected"]
    return f"{u / n:.2f}/{d / n:.2f}" if n else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    ap.add_argument("--qualities", type=int, nargs="+", default=QUALITIES)
    ap.add_argument("--scenes", type=int, default=9, help="labelled photos used for recall")
    ap.add_argument("--face-px", type=float, nargs="+", default=[40, 56, 80, 112],
                    help="median face width on the 1920x1080 recall frames")
    ap.add_argument("--stills", type=int, default=6, help="real 1080p stills for bytes")
    ap.add_argument("--max-upscale", type=float, default=1.25)
    ap.add_argument("--clip-frames", type=int, default=46, help="clip frames per rate, at most")
    ap.add_argument("--no-native", action="store_true", help="skip the uncapped detector")
    ap.add_argument("--no-recall", action="store_true")
    ap.add_argument("--no-cost", action="store_true")
    ap.add_argument("--embed", action="store_true",
                    help="also run the worker's whole path (gate, align, embed) per cell and "
                         "compare each face's embedding with the source frame's")
    ap.add_argument("--cost-batches", type=int, nargs="+", default=[1, 2, 3, 4, 8])
    ap.add_argument("--cameras", type=int, default=4,
                    help="cameras on the deployment (their health entries size its row)")
    ap.add_argument("--json", type=Path, help="also write the JSON line to this file")
    args = ap.parse_args()
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    if not CLIP.exists() or not dr.LABELS.exists():
        print(f"skipped: needs {CLIP} and {dr.LABELS} (internal test data in ../shared/data)")
        return 0
    cv2.setNumThreads(1)
    cpu0, wall0 = cpu_s(), time.perf_counter()
    s = Settings()

    clip = read_clip(CLIP, FPS, args.clip_frames)
    stills = stills_1080(args.stills, args.max_upscale)
    scenes = {px: [dr.on_canvas(c, FRAME_WH, px) for c in dr.load_labelled()[:args.scenes]]
              for px in args.face_px}
    # Capture-side decode of a 1080p MJPEG camera: its JPEG (quality 90) decoded once per frame.
    mjpeg = [encode(img, GatewayOptions(max_side=4096, jpeg_quality=90)) for _, img in stills]
    t_mjpeg = Timed()
    for _ in range(3):
        for b in mjpeg:
            t_mjpeg(lambda b=b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR))

    dets: dict[str, RetinaFaceDetector] = {}
    if not args.no_recall:
        base = RetinaFaceDetector.from_spec(default_detector_spec(), threads=1,
                                            max_side=s.detect_max_side,
                                            min_side=s.detect_min_side)
        dets["worker"] = base
        if not args.no_native:
            dets["native"] = RetinaFaceDetector(base.session, max_side=dr.NATIVE,
                                                min_side=s.detect_min_side)
    print(f"sources: clip {clip.wh[0]}x{clip.wh[1]} at {clip.native_fps:.2f} fps, "
          f"{clip.source_frames} frames, {len(clip.frames[5.0])} kept at 5 fps; "
          f"{len(stills)} real 1080p stills ({', '.join(n for n, _ in stills)}); "
          f"{args.scenes} labelled scenes x face {'/'.join(f'{p:g}' for p in args.face_px)} px "
          f"on {FRAME_WH[0]}x{FRAME_WH[1]} grey")
    print(f"capture decode, CPU-ms: H.264 {clip.wh[0]}x{clip.wh[1]} "
          f"{clip.decode_ms_per_source_frame:.2f} per source frame = "
          f"{clip.decode_ms_per_source_frame * clip.native_fps / 5:.2f} per frame kept at 5 fps "
          f"(every frame is decoded to sample 1 in {clip.native_fps / 5:.0f}), "
          f"{clip.decode_ms_per_source_frame * clip.native_fps / 2:.2f} at 2 fps; "
          f"MJPEG 1920x1080 q90 {t_mjpeg.ms:.2f} per frame; H.264 1080p: not measurable here "
          f"(no H.264 encoder in this OpenCV to make a 1080p stream)")

    pipeline, ref_faces = None, None
    if args.embed:
        from chalicelib.vision.factory import build_pipeline

        pipeline = build_pipeline(s)
        ref_faces = {px: [pipeline.analyze(c.image) for c in cs] for px, cs in scenes.items()}
    timers = {k: Timed() for k in dets}
    ref: dict[str, Any] = {}
    if dets:
        ref = recall_of(dets, scenes, lambda img: img, timers, s.min_face_px)
    ref_ms = {k: t.ms for k, t in timers.items()}

    cells: list[Cell] = []
    for m in args.sizes:
        for q in args.qualities:
            cells.append(run_cell(m, q, clip, stills, scenes, dets, s, pipeline, ref_faces))
            c = cells[-1]
            print(f"  {m} q{q}: {c.bytes_stills / 1000:.0f} kB/frame "
                  f"(CPU so far {cpu_s() - cpu0:.0f} s)", flush=True)

    # The table
    pxs = [f"{p:g}" for p in args.face_px]
    rec_cols = [f"{d} {p}px" for d in dets for p in pxs]
    cols = ["max_side", "q", "frame", "clip B", "clip->1080 kB", "1080p kB", "Mbit/s@5",
            "@2", "wire@5 (3/b)", "gw enc 360p ms", "gw enc 1080p ms", "wk decode ms",
            *rec_cols, *(f"{d} detect ms" for d in dets)]
    widths = [max(7, len(c)) for c in cols]
    line = " | ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))
    default = next((c for c in cells if (c.max_side, c.quality) == (1280, 90)), cells[0])
    over3 = batch_overhead(round(default.bytes_stills), 3)
    print(f"\nGateway encode per cell (bytes: mean per frame; Mbit/s: payload per camera from the "
          f"1080p stills; wire: + container, form, headers, framing, batches of 3; CPU-ms per "
          f"frame, getrusage; recall: usable/detected share of the labelled faces of median "
          f"N px in the 1920x1080 frame; detected: score >= {dr.GATE_SCORE}, IoU >= "
          f"{dr.LABEL_IOU}; usable: also >= {s.min_face_px} px in the uploaded frame)")
    print(f"{line}\n{'-' * len(line)}")
    if dets:
        vals = ["source", "-", f"{FRAME_WH[0]}x{FRAME_WH[1]}", *["-"] * 9,
                *(frac(ref[d][p]) for d in dets for p in pxs),
                *(f"{ref_ms[d]:.1f}" for d in dets)]
        print(" | ".join(f"{v:>{w}}" for v, w in zip(vals, widths, strict=True)))
    for c in cells:
        vals = [c.max_side, c.quality, f"{c.wh[0]}x{c.wh[1]}", f"{c.bytes_clip:,.0f}",
                f"{c.bytes_clip1080 / 1000:.1f}", f"{c.bytes_stills / 1000:.1f}",
                f"{c.mbit(5):.2f}", f"{c.mbit(2):.2f}",
                f"{wire_mbit(c.bytes_stills, 5, 3, over3):.2f}", f"{c.enc_ms_clip:.2f}",
                f"{c.enc_ms_1080:.2f}", f"{c.dec_ms_worker:.2f}",
                *(frac(c.recall[d][p]) for d in dets for p in pxs),
                *(f"{c.det_ms[d]:.1f}" for d in dets)]
        print(" | ".join(f"{v:>{w}}" for v, w in zip(vals, widths, strict=True)))
    if dets:
        n = {p: ref[next(iter(dets))][p]["detected"][1] for p in pxs}
        print("recall over " + ", ".join(f"{n[p]} faces at {p} px" for p in pxs)
              + f" ({args.scenes} photos); 'worker' detects at max_side {s.detect_max_side} "
              f"(the deployed default), 'native' at the frame's own size")
    print("batch overhead over the JPEGs, bytes: "
          + ", ".join(f"{k} {v}" for k, v in over3.items())
          + f" (3 frames); x{FRAMING} framing")

    if pipeline is not None and ref_faces is not None:
        n_ref = sum(len(a.faces) for fs in ref_faces.values() for a in fs)
        print(f"\nThe worker's whole path (detector at {s.detect_max_side}, full quality gate, "
              f"mirror pass, embedding) on each cell's frames against the source frame's "
              f"{n_ref} gated faces (face sizes {'/'.join(pxs)} px together)")
        print(f"{'max_side':>8} | {'q':>3} | {'still gated':>11} | {'cos mean':>8} | "
              f"{'cos p05':>7} | {'cos min':>7}")
        for c in cells:
            e = c.embed
            print(f"{c.max_side:>8} | {c.quality:>3} | {e['kept'] / max(1, e['of']):>11.2f} | "
                  f"{e['cos_mean']:>8.3f} | {e['cos_p05']:>7.3f} | {e['cos_min']:>7.3f}")
    result: dict[str, Any] = {
        "benchmark": "gateway_bandwidth", "frame": FRAME_WH, "clip_wh": clip.wh,
        "capture_decode_ms": {"h264_360p_per_source_frame": clip.decode_ms_per_source_frame,
                              "h264_360p_per_frame_at_5fps":
                              clip.decode_ms_per_source_frame * clip.native_fps / 5,
                              "mjpeg_1080p": t_mjpeg.ms},
        "batch_overhead_3": over3,
        "reference_recall": ref, "reference_detect_ms": ref_ms,
        "cells": [{"max_side": c.max_side, "quality": c.quality, "wh": c.wh,
                   "bytes": {"clip": c.bytes_clip, "clip1080": c.bytes_clip1080,
                             "stills1080": c.bytes_stills, "scenes": c.bytes_scenes},
                   "mbit_5fps": c.mbit(5), "mbit_2fps": c.mbit(2),
                   "wire_mbit_5fps_3": wire_mbit(c.bytes_stills, 5, 3, over3),
                   "enc_ms": {"clip360": c.enc_ms_clip, "src1080": c.enc_ms_1080},
                   "worker_decode_ms": c.dec_ms_worker, "recall": c.recall,
                   "detect_ms": c.det_ms, "embed": c.embed} for c in cells],
    }
    if not args.no_cost:
        print(f"\n(applied batch ids: an item each, kept {continuity.APPLIED_TTL_S:g} s)")
        result["cost"] = print_cost(default.bytes_stills, 5.0, args.cost_batches,
                                    args.cameras)
        result["cost"]["applied_ttl_s"] = continuity.APPLIED_TTL_S
        result["cost"]["overhead_by_batch"] = {
            n: batch_overhead(round(default.bytes_stills), n) for n in args.cost_batches}
    result["cpu_s"] = cpu_s() - cpu0
    print(f"\n(CPU {result['cpu_s']:.0f} s; wall {time.perf_counter() - wall0:.0f} s)")
    text = json.dumps(result, separators=(",", ":"))
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
