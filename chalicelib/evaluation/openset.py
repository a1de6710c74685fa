"""Open-set 1:N identification, the NIST FRVT/FRTE way, run through the worker's own code.

Protocol (`evaluate`):
- DIR holds one folder per identity. With a seed, the identities are shuffled and split into
  enrolled (half, or `watchlist_size`) and not enrolled.
- Each enrolled identity is enrolled from K of its images (fewer where it has fewer than K + 1,
  so that at least one image is left to probe with); its template is built by
  `chalicelib.matching.template` from the face enrollment takes from each reference image
  (`chalicelib.matching.subject_face`: an image enrollment would refuse is left out).
- Every other image is a probe: mated (an enrolled person) or non-mated (everybody else). A probe
  image is analysed exactly as the worker analyses a frame: detection, quality gate, alignment,
  embedding of every face that passes, a 1:N search of each face, and `decide()` on each face.
  A mated probe is a hit at rank 1 when the best-scoring face's top candidate is the right
  subject (and, at a threshold, when that score reaches it); a non-mated probe is a false
  positive when any of its faces' top score reaches the threshold.
- TPIR at FPIR x: the threshold is the score that at most x of the non-mated probes reach, TPIR is
  the share of mated probes that are hits at that threshold. FNIR = 1 - TPIR (DET curve).
- `calibrated`: what the deployed decision does. Its threshold comes from the impostor score
  model shipped with the recognizer (`chalicelib.matching.calibration`), for the target FPIR and
  this gallery's size, derived without looking at these probes.

Embeddings are computed once per image per run (and optionally cached on disk by `--cache`).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chalicelib.matching.calibration import expected_fpir, threshold_for
from chalicelib.matching.decision import decide
from chalicelib.matching.index import Candidate, ExactIndex
from chalicelib.matching.subject_face import choose_subject_face
from chalicelib.matching.template import fuse_embeddings, image_quality
from chalicelib.settings import Settings

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FPIR_POINTS = (0.1, 0.01, 0.001)


# ---------------------------------------------------------------------------------------------
# Faces of each image, as the worker sees them


@dataclass
class ImageFaces:
    """Every face of one image that passed the quality gate (rows in detector order)."""

    embeddings: np.ndarray  # (F, D) float32, L2-normalised
    det_scores: np.ndarray  # (F,)
    boxes: np.ndarray  # (F, 4) x1, y1, x2, y2
    sharpness: np.ndarray  # (F,) variance of the Laplacian of the aligned crop
    shape: tuple[int, int]  # (height, width) of the image
    rejected: int = 0  # faces the quality gate refused
    error: str = ""  # why the image could not be read, if it could not
    refused_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    @property
    def n(self) -> int:
        return int(self.embeddings.shape[0])

    def central(self) -> int | None:
        """The most central large face: what an operator means by 'the face in this photo'.

        Among all detected faces at least half as large (area) as the largest, the one whose
        centre is nearest the image centre. Chosen before the quality gate: when the gate kept
        that face out, the image has no usable labelled face (None), rather than a bystander
        standing in for the person the folder names.

        This labels probes (which face the ground truth speaks for) and never refuses one; the
        gallery is built with enrollment's own rule instead (subject_face).
        """
        if self.n == 0:
            return None
        boxes = np.concatenate([self.boxes, self.refused_boxes.reshape(-1, 4)])
        wh = boxes[:, 2:4] - boxes[:, 0:2]
        area = wh[:, 0] * wh[:, 1]
        large = area >= 0.5 * area.max()
        h, w = self.shape
        centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
        dist = np.hypot((centre[:, 0] - w / 2) / max(w, 1), (centre[:, 1] - h / 2) / max(h, 1))
        dist = np.where(large, dist, np.inf)
        i = int(np.argmin(dist))
        return i if i < self.n else None

    def subject_face(self) -> int | None:
        """The face enrollment would take from this image as its subject's (the one rule,
        chalicelib.matching.subject_face), None where enrollment would refuse the image."""
        boxes = np.concatenate([self.boxes.reshape(-1, 4), self.refused_boxes.reshape(-1, 4)])
        usable = np.arange(len(boxes)) < self.n  # the faces that passed the gate come first
        return choose_subject_face(boxes, usable, self.shape).index

    def quality(self, i: int) -> float:
        side = float(min(self.boxes[i, 2] - self.boxes[i, 0], self.boxes[i, 3] - self.boxes[i, 1]))
        return image_quality(float(self.det_scores[i]), float(self.sharpness[i]), side)


_WORKER: dict[str, object] = {}


def _init_worker(settings: Settings) -> None:
    from chalicelib.vision.factory import build_pipeline

    _WORKER["pipeline"] = build_pipeline(settings)
    _WORKER["max_pixels"] = settings.max_frame_pixels


def _analyse_path(path: str) -> tuple[str, ImageFaces]:
    from chalicelib.vision.decode import FrameDecodeError, decode_jpeg
    from chalicelib.vision.quality import sharpness
    from chalicelib.vision.reference_image import decode_reference

    pipeline = _WORKER["pipeline"]
    data = Path(path).read_bytes()
    empty = ImageFaces(np.zeros((0, 128), np.float32), np.zeros(0), np.zeros((0, 4)),
                       np.zeros(0), (0, 0))
    try:
        if data[:3] == b"\xff\xd8\xff":
            image = decode_jpeg(data, int(_WORKER["max_pixels"]))  # type: ignore[arg-type]
        else:
            image = decode_reference(data, int(_WORKER["max_pixels"]))  # type: ignore[arg-type]
    except (FrameDecodeError, ValueError) as exc:
        empty.error = str(exc)
        return path, empty
    analysis = pipeline.analyze(image)  # type: ignore[attr-defined]
    faces = analysis.faces
    dim = faces[0].embedding.shape[0] if faces else 128
    return path, ImageFaces(
        embeddings=np.stack([f.embedding for f in faces]).astype(np.float32)
        if faces else np.zeros((0, dim), np.float32),
        det_scores=np.array([f.detection.score for f in faces], dtype=np.float32),
        boxes=np.array([f.detection.box[:4] for f in faces], dtype=np.float32).reshape(-1, 4),
        sharpness=np.array([sharpness(f.crop) for f in faces], dtype=np.float32),
        shape=(int(image.shape[0]), int(image.shape[1])),
        rejected=int(sum(analysis.rejected.values())),
        refused_boxes=np.array([d.box[:4] for d in analysis.refused],
                               dtype=np.float32).reshape(-1, 4),
    )


def pipeline_key(s: Settings) -> str:
    """What, besides the embedding space, changes the faces an image gives: the gate, every
    field of it (a cache made before a gate change is not read after it)."""
    from chalicelib.vision.factory import quality_policy

    return repr(quality_policy(s))


class FaceCache:
    """Faces per image path for one recognizer and pipeline configuration; optionally
    persisted as .npz between runs (a file written under another configuration is ignored)."""

    def __init__(self, model_id: str, path: Path | None = None, key: str = "") -> None:
        self.model_id = model_id
        self.key = key
        self.path = path
        self.items: dict[str, ImageFaces] = {}
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        z = np.load(path, allow_pickle=False)
        if str(z["model_id"]) != self.model_id or "key" not in z or str(z["key"]) != self.key:
            return
        keys = [str(k) for k in z["keys"]]
        offsets = z["offsets"]
        # Read each array once (an NpzFile re-reads an array on every access).
        emb, det, box, sharp = z["emb"], z["det"], z["box"], z["sharp"]
        shape, rejected, error = z["shape"], z["rejected"], z["error"]
        if "rbox" not in z:
            return  # written before refused faces were kept: embed again
        rbox, roff = z["rbox"], z["roffsets"]
        for i, key in enumerate(keys):
            a, b = int(offsets[i]), int(offsets[i + 1])
            ra, rb = int(roff[i]), int(roff[i + 1])
            self.items[key] = ImageFaces(
                emb[a:b].copy(), det[a:b].copy(), box[a:b].copy(), sharp[a:b].copy(),
                (int(shape[i, 0]), int(shape[i, 1])), int(rejected[i]), str(error[i]),
                rbox[ra:rb].copy(),
            )

    def save(self) -> None:
        if self.path is None or not self.items:
            return
        keys = sorted(self.items)
        faces = [self.items[k] for k in keys]
        offsets = np.cumsum([0] + [f.n for f in faces])
        dim = next((f.embeddings.shape[1] for f in faces if f.n), 128)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(
            tmp,
            model_id=np.array(self.model_id),
            key=np.array(self.key),
            keys=np.array(keys),
            offsets=offsets,
            emb=np.concatenate([f.embeddings.reshape(-1, dim) for f in faces]).astype(np.float32),
            det=np.concatenate([f.det_scores for f in faces]).astype(np.float32),
            box=np.concatenate([f.boxes.reshape(-1, 4) for f in faces]).astype(np.float32),
            sharp=np.concatenate([f.sharpness for f in faces]).astype(np.float32),
            shape=np.array([f.shape for f in faces], dtype=np.int32).reshape(-1, 2),
            rejected=np.array([f.rejected for f in faces], dtype=np.int32),
            error=np.array([f.error for f in faces]),
            roffsets=np.cumsum([0] + [len(f.refused_boxes) for f in faces]),
            rbox=np.concatenate([f.refused_boxes.reshape(-1, 4) for f in faces]).astype(
                np.float32),
        )
        tmp.replace(self.path)


def embed_images(
    paths: Sequence[Path],
    settings: Settings,
    cache: FaceCache,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, ImageFaces]:
    """Faces of every image (the worker's pipeline); images already in the cache are reused."""
    if cache.key != pipeline_key(settings):
        raise ValueError(f"face cache made for {cache.key!r}, not {pipeline_key(settings)!r}")
    keys = [str(p) for p in paths]
    resolved = {k: str(Path(k).resolve()) for k in keys}  # cache keys do not depend on the cwd
    todo = [r for r in dict.fromkeys(resolved.values()) if r not in cache.items]
    if todo:
        bar = _progress(len(todo), "embedding", progress)
        if workers <= 1:
            _init_worker(settings)
            for k in todo:
                key, faces = _analyse_path(k)
                cache.items[key] = faces
                bar(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
                for key, faces in pool.imap_unordered(_analyse_path, todo, chunksize=8):
                    cache.items[key] = faces
                    bar(1)
        bar(0, close=True)
        cache.save()
    return {k: cache.items[resolved[k]] for k in keys}


def faces_of_folder(data_dir: Path, workers: int, cache_path: Path | None,
                    ) -> tuple[dict[str, list[Path]], dict[str, ImageFaces]]:
    """Every identity folder's photos, and their faces through the worker's pipeline, with the
    face cache at `cache_path` (for the benchmarks that read faces/dev)."""
    from chalicelib.vision.factory import embedding_id

    settings = Settings()
    identities = list_identities(data_dir)
    cache = FaceCache(embedding_id(settings), cache_path, pipeline_key(settings))
    paths = [path for images in identities.values() for path in images]
    return identities, embed_images(paths, settings, cache, workers=workers, progress=False)


def _progress(total: int, desc: str, enabled: bool) -> Callable[..., None]:
    if not enabled:
        return lambda n, close=False: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", smoothing=0.05)

    def update(n: int, close: bool = False) -> None:
        if n:
            bar.update(n)
        if close:
            bar.close()

    return update


# ---------------------------------------------------------------------------------------------
# Identities and the split


def list_identities(data_dir: Path) -> dict[str, list[Path]]:
    """One folder per identity, images sorted by name; folders without images are ignored."""
    out: dict[str, list[Path]] = {}
    for d in sorted(p for p in Path(data_dir).iterdir() if p.is_dir()):
        images = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            out[d.name] = images
    if not out:
        raise ValueError(f"{data_dir}: no identity folders with images")
    return out


def labelled_faces(identities: dict[str, list[Path]], faces: dict[str, ImageFaces],
                   ) -> tuple[list[np.ndarray], list[str]]:
    """One embedding per photo: the person the folder names (the most central large face),
    where the quality gate passed it."""
    embs, labels = [], []
    for name, images in identities.items():
        for p in images:
            f = faces[str(p)]
            i = f.central()
            if i is not None:
                embs.append(f.embeddings[i])
                labels.append(name)
    return embs, labels


def name_half(name: str) -> int:
    """0 or 1, fixed for ever by the identity's name: how the shipped statistics' background
    identities (half 0) are told apart from held-out ones (half 1)."""
    return hashlib.sha256(name.encode("utf-8")).digest()[0] & 1


def select_identities(
    identities: dict[str, list[Path]], half: int | None = None, limit: int | None = None
) -> dict[str, list[Path]]:
    names = sorted(identities)
    if half is not None:
        names = [n for n in names if name_half(n) == half]
    if limit is not None:
        names = names[:limit]
    return {n: identities[n] for n in names}


@dataclass
class Split:
    enrolled: dict[str, list[Path]]  # subject -> reference images
    mated: list[tuple[Path, str]]  # probe image, its subject
    nonmated: list[Path]
    nonmated_identity: list[str] = field(default_factory=list)  # whose image each one is


def make_split(
    identities: dict[str, list[Path]], seed: int, enroll: int, watchlist_size: int | None = None
) -> Split:
    rng = np.random.default_rng(seed)
    names = sorted(identities)
    order = [names[i] for i in rng.permutation(len(names))]
    n_enrolled = len(names) // 2 if watchlist_size is None else int(watchlist_size)
    if not 0 < n_enrolled < len(names):
        raise ValueError(f"watchlist size {n_enrolled} needs 0 < size < {len(names)} identities")
    split = Split({}, [], [])
    for name in order[:n_enrolled]:
        images = identities[name]
        shuffled = [images[i] for i in rng.permutation(len(images))]
        k = max(1, min(enroll, len(images) - 1))
        split.enrolled[name] = shuffled[:k]
        split.mated.extend((p, name) for p in shuffled[k:])
    for name in order[n_enrolled:]:
        split.nonmated.extend(identities[name])
        split.nonmated_identity.extend([name] * len(identities[name]))
    return split


# ---------------------------------------------------------------------------------------------
# Scores and rates


def _subject_faces(refs: Sequence[Path], faces: dict[str, ImageFaces],
                   ) -> tuple[list[np.ndarray], list[float], int]:
    """The face enrollment takes from each reference image (ImageFaces.subject_face), with its
    quality, and how many images it would refuse."""
    embs, q, refused = [], [], 0
    for p in refs:
        f = faces[str(p)]
        i = f.subject_face()
        if i is None:
            refused += 1
            continue
        embs.append(f.embeddings[i])
        q.append(f.quality(i))
    return embs, q, refused


def build_gallery(
    split: Split, faces: dict[str, ImageFaces], model_id: str
) -> tuple[ExactIndex, dict[str, list[float]], int]:
    """The watchlist index; per-subject per-image quality; count of refused reference images.

    Each reference gives the face enrollment takes from it (ImageFaces.subject_face); an image
    enrollment would refuse is left out, and a subject with none left is not on the list."""
    ids, templates, quality = [], [], {}
    refused = 0
    for name, refs in split.enrolled.items():
        embs, q, n_refused = _subject_faces(refs, faces)
        refused += n_refused
        if embs:
            ids.append(name)
            templates.append(fuse_embeddings(np.stack(embs), q))
            quality[name] = q
    matrix = np.stack(templates) if templates else np.zeros((0, 128), np.float32)
    return ExactIndex(ids, matrix, model_id), quality, refused


@dataclass
class ProbeScores:
    """Mated: top score of the best face and whether its top candidate is right.
    Non-mated: the highest top score over the image's faces (-inf when no face passed)."""

    mated_score: np.ndarray
    mated_correct: np.ndarray
    nonmated_score: np.ndarray
    mated_no_face: int = 0
    nonmated_no_face: int = 0
    # Whose probe each row is (identity folder names), for rates per group of people.
    mated_identity: np.ndarray = field(default_factory=lambda: np.array([], str))
    nonmated_identity: np.ndarray = field(default_factory=lambda: np.array([], str))


def _top_per_face(index: ExactIndex, f: ImageFaces) -> list[Candidate]:
    if f.n == 0:
        return []
    return [c[0] for c in index.search(f.embeddings, k=1) if c]


LABELLED, ALL_FACES = "labelled", "all"


def _judged(index: ExactIndex, f: ImageFaces, probe_faces: str) -> list[Candidate]:
    """Top candidate of each face the ground truth speaks for.

    labelled: only the face the folder names (the most central large face); other faces in the
    photograph are bystanders of unknown identity (in news photographs they are often other
    enrolled people: a correct alert on them is not a false one). all: every face, as if every
    face in the image were the folder's person (mated) or nobody enrolled (non-mated).
    """
    tops = _top_per_face(index, f)
    if probe_faces == ALL_FACES or not tops:
        return tops
    c = f.central()
    return [] if c is None else [tops[c]]


def score_probes(
    split: Split, faces: dict[str, ImageFaces], index: ExactIndex, probe_faces: str = LABELLED
) -> ProbeScores:
    ms, mc, ns = [], [], []
    m_none = n_none = 0
    for path, name in split.mated:
        tops = _judged(index, faces[str(path)], probe_faces)
        if not tops:
            m_none += 1
            ms.append(-np.inf)
            mc.append(False)
            continue
        best = max(tops, key=lambda c: c.score)
        ms.append(best.score)
        mc.append(best.subject_id == name)
    for path in split.nonmated:
        tops = _judged(index, faces[str(path)], probe_faces)
        if not tops:
            n_none += 1
        ns.append(max((c.score for c in tops), default=-np.inf))
    owners = split.nonmated_identity or [p.parent.name for p in split.nonmated]
    return ProbeScores(np.array(ms, float), np.array(mc, bool), np.array(ns, float), m_none,
                       n_none, np.array([n for _, n in split.mated], str), np.array(owners, str))


def threshold_at_fpir(nonmated: np.ndarray, fpir: float) -> float:
    """Smallest threshold t (alert when score >= t) with share(nonmated >= t) <= fpir."""
    s = np.sort(np.asarray(nonmated, float))[::-1]
    k = int(np.floor(fpir * len(s) + 1e-9))  # false positives allowed
    if k >= len(s):
        return -np.inf
    return float(np.nextafter(s[k], np.inf))


def tpir_at(scores: ProbeScores, threshold: float) -> float:
    hits = scores.mated_correct & (scores.mated_score >= threshold)
    return float(hits.mean()) if len(hits) else float("nan")


def fpir_at(scores: ProbeScores, threshold: float) -> float:
    ns = scores.nonmated_score
    return float((ns >= threshold).mean()) if len(ns) else float("nan")


def decide_probe(
    index: ExactIndex, f: ImageFaces, threshold: float, probe_faces: str = LABELLED
) -> tuple[list[Candidate], int]:
    """The worker's alert decisions for one image: `decide()` on each face's candidates.

    Returns the alerts on the judged faces (see _judged) and the number of alerts on the
    others (bystanders: counted, not judged)."""
    if f.n == 0:
        return [], 0
    judged = set(range(f.n)) if probe_faces == ALL_FACES else {f.central()}
    out, other = [], 0
    for i, cands in enumerate(index.search(f.embeddings, k=1)):
        hit = decide(cands, threshold)
        if hit is None:
            continue
        if i in judged:
            out.append(hit)
        else:
            other += 1
    return out, other


def det_curve(scores: ProbeScores) -> tuple[np.ndarray, np.ndarray]:
    """(FPIR, FNIR) at every distinct non-mated score (thresholds from high to low)."""
    ns = np.sort(scores.nonmated_score[np.isfinite(scores.nonmated_score)])[::-1]
    thresholds = np.unique(np.concatenate([ns, [np.inf]]))[::-1]
    fpir = np.array([fpir_at(scores, t) for t in thresholds])
    fnir = np.array([1.0 - tpir_at(scores, t) for t in thresholds])
    return fpir, fnir


# ---------------------------------------------------------------------------------------------
# The whole evaluation


def template_mix(split: Split, faces: dict[str, ImageFaces]) -> dict[int, int]:
    """{reference images in a template: subjects} of the gallery, as deployment creation
    counts a watchlist."""
    mix: dict[int, int] = {}
    for refs in split.enrolled.values():
        k = sum(1 for p in refs if faces[str(p)].central() is not None)
        if k:
            mix[k] = mix.get(k, 0) + 1
    return mix


def scaled_mix(mix: dict[int, int], size: int) -> dict[int, int]:
    """A watchlist of `size` subjects with the reference counts of `mix` in the same shares
    (largest remainders, so the counts add up to `size` exactly)."""
    if size < 1:
        raise ValueError("a watchlist needs at least one subject")
    total = sum(mix.values()) or 1
    shares = {k: size * v / total for k, v in mix.items()} or {1: float(size)}
    out = {k: int(s) for k, s in shares.items()}
    for k in sorted(shares, key=lambda k: out[k] - shares[k])[: size - sum(out.values())]:
        out[k] += 1
    return {k: v for k, v in sorted(out.items()) if v}


@dataclass
class EvalResult:
    report: dict[str, object]
    scores: ProbeScores
    extra: dict[str, object] = field(default_factory=dict)


def evaluate(
    data_dir: Path,
    *,
    seed: int = 0,
    enroll: int = 1,
    watchlist_size: int | None = None,
    target_fpir: float = 0.001,
    settings: Settings | None = None,
    stats: dict | None = None,
    workers: int = 1,
    cache: FaceCache | None = None,
    identities: dict[str, list[Path]] | None = None,
    progress: bool = True,
    probe_faces: str = LABELLED,
) -> EvalResult:
    from chalicelib.matching.calibration import load_stats
    from chalicelib.vision.factory import build_pipeline

    settings = settings or Settings()
    model_id = build_pipeline(settings).model_id
    stats = stats if stats is not None else load_stats(model_id)
    identities = identities if identities is not None else list_identities(data_dir)
    split = make_split(identities, seed, enroll, watchlist_size)
    paths = [p for refs in split.enrolled.values() for p in refs]
    paths += [p for p, _ in split.mated] + list(split.nonmated)
    cache = cache or FaceCache(model_id, key=pipeline_key(settings))
    faces = embed_images(paths, settings, cache, workers=workers, progress=progress)
    index, quality, refused = build_gallery(split, faces, model_id)
    scores = score_probes(split, faces, index, probe_faces)
    other_mode = ALL_FACES if probe_faces == LABELLED else LABELLED
    other_scores = score_probes(split, faces, index, other_mode)
    mix = template_mix(split, faces)
    threshold = threshold_for(stats, target_fpir, mix)
    report: dict[str, object] = {
        "model_id": model_id,
        "seed": seed,
        "enroll": enroll,
        "n_identities": len(identities),
        "n_gallery": len(index),
        "n_mated": len(split.mated),
        "n_nonmated": len(split.nonmated),
        "rank1": _rank1(scores),
        "tpir_at_fpir": _tpir_at_fpir_points(scores),
        "calibrated": _calibrated(split, faces, index, stats, target_fpir, threshold, mix,
                                  probe_faces),
        "probe_faces": probe_faces,
        other_mode + "_faces": {
            "rank1": _rank1(other_scores),
            "tpir_at_fpir": _tpir_at_fpir_points(other_scores),
            "calibrated_measured_fpir": round(fpir_at(other_scores, threshold), 6),
            "calibrated_tpir": round(tpir_at(other_scores, threshold), 6),
        },
        "counts": _counts(split, faces, scores, refused),
        "reference_quality_median": round(float(np.median(
            [q for qs in quality.values() for q in qs])), 4) if quality else None,
    }
    report["operating_points"] = operating_points(stats, mix, scores)
    return EvalResult(report, scores, {"faces": faces, "index": index, "split": split})


def _rank1(scores: ProbeScores) -> float | None:
    """Share of mated probes whose best face's top candidate is right (None: no mated probe;
    score_probes gives every mated probe a row)."""
    n = len(scores.mated_correct)
    return round(float(scores.mated_correct.mean()), 6) if n else None


def _tpir_at_fpir_points(scores: ProbeScores) -> dict[str, float]:
    return {
        str(x): round(tpir_at(scores, threshold_at_fpir(scores.nonmated_score, x)), 6)
        for x in FPIR_POINTS
    }


def _calibrated(split: Split, faces: dict[str, ImageFaces], index: ExactIndex, stats: dict,
                target_fpir: float, threshold: float, mix: dict[int, int], probe_faces: str,
                ) -> dict[str, object]:
    """The deployed decision, face by face, exactly as the worker takes it, at the threshold
    the impostor model gives this gallery for the target."""
    mated_hits = bystander_alerts = false_alerts = 0
    for path, name in split.mated:
        alerts, other = decide_probe(index, faces[str(path)], threshold, probe_faces)
        bystander_alerts += other
        if alerts and max(alerts, key=lambda c: c.score).subject_id == name:
            mated_hits += 1
    for path in split.nonmated:
        alerts, other = decide_probe(index, faces[str(path)], threshold, probe_faces)
        bystander_alerts += other
        false_alerts += bool(alerts)
    n_m, n_n = len(split.mated), len(split.nonmated)
    return {
        "target_fpir": target_fpir,
        "threshold": round(threshold, 6),
        "expected_fpir": expected_fpir(stats, threshold, mix),
        "template_sizes": mix,
        "measured_fpir": round(false_alerts / n_n, 6) if n_n else None,
        "false_alerts": false_alerts,
        "tpir": round(mated_hits / n_m, 6) if n_m else None,
        "bystander_alerts": bystander_alerts,
        "stats_source": stats.get("source", {}).get("description", ""),
    }


def _counts(split: Split, faces: dict[str, ImageFaces], scores: ProbeScores,
            refused: int) -> dict[str, int]:
    return {
        "reference_images": sum(len(v) for v in split.enrolled.values()),
        "reference_images_refused": refused,
        "mated_probes_without_usable_face": scores.mated_no_face,
        "nonmated_probes_without_usable_face": scores.nonmated_no_face,
        "faces_searched": int(sum(faces[str(p)].n for p, _ in split.mated)
                              + sum(faces[str(p)].n for p in split.nonmated)),
    }


def operating_points(stats: dict, mix: dict[int, int], scores: ProbeScores,
                     targets: Sequence[float] | None = None) -> list[dict[str, object]]:
    """At the rates police compare against: the deployed threshold for this gallery, what the
    impostor model expects (with its interval, and whether it was counted or extrapolated), and
    what these probes measured (TPIR and FPIR, exact 95 % intervals)."""
    from chalicelib.matching.calibration import POLICE_TARGETS, operating_point
    from chalicelib.ops.rates import clopper_pearson

    out = []
    n_m, n_n = len(scores.mated_score), len(scores.nonmated_score)
    for target in targets or POLICE_TARGETS:
        pt = operating_point(stats, target, mix)
        hits = int(round(tpir_at(scores, pt.threshold) * n_m)) if n_m else 0
        false = int((scores.nonmated_score >= pt.threshold).sum())
        out.append({
            "target_fpir": target, "threshold": pt.threshold,
            "expected_fpir": pt.expected_fpir, "expected_fpir_95": [pt.fpir_low, pt.fpir_high],
            "extrapolated": pt.extrapolated, "checked_on_unseen": pt.checked_on_unseen,
            "background_scores_at_or_above": [pt.counted, pt.of_scores],
            "tpir": hits / n_m if n_m else None,
            "tpir_95": list(clopper_pearson(hits, n_m)) if n_m else None,
            "measured_fpir": false / n_n if n_n else None,
            "measured_fpir_95": list(clopper_pearson(false, n_n)) if n_n else None,
            "false_alerts": false, "nonmated": n_n,
        })
    return out


MIN_OFF_LIST = 100  # identities left off every drawn watchlist, for a rate to mean anything


def calibration_check(
    identities: dict[str, list[Path]],
    faces: dict[str, ImageFaces],
    stats: dict,
    targets: Iterable[float],
    sizes: Iterable[int],
    *,
    enroll: int = 1,
    repeats: int = 50,
    seed: int = 0,
    central_only: bool = False,
    bootstrap: int = 500,
    min_off_list: int = MIN_OFF_LIST,
) -> list[dict[str, object]]:
    """Measured FPIR of the calibrated threshold over many random watchlists of each size.

    One fixed template per identity (seeded choice of `enroll` images, fused as enrollment
    fuses them); for each draw, a random watchlist of `size` identities, and every image of
    every other identity is a non-mated probe (an image is a false positive if any of its
    judged faces' top score reaches the threshold). The threshold is the deployed one for the
    draws' mix of template sizes. Every draw leaves at least MIN_OFF_LIST identities off the
    list: a rate measured on a dozen people says nothing.

    Pooled draws reuse the same people, so the interval is a cluster bootstrap over the
    off-list identities (each weighing the same, however many photographs it has).
    """
    # One generator for the templates and then the draws, another for the bootstrap: the
    # order they are used in is the order of the figures, and so part of the result.
    rng = np.random.default_rng(seed)
    pop = _population(identities, faces, rng, enroll, central_only)
    rows = []
    boot = np.random.default_rng(seed + 1)
    for size in sizes:
        if len(pop.names) - size < min_off_list:
            raise ValueError(f"watchlist size {size} leaves {len(pop.names) - size} of "
                             f"{len(pop.names)} identities off the list (need {min_off_list})")
        mix = _watchlist_mix(pop, size)
        tops, offs = _draw_watchlists(pop, size, repeats, rng)
        for target in targets:
            t = threshold_for(stats, target, mix)
            rows.append({"target_fpir": target, "gallery_size": size, "template_sizes": mix,
                         "threshold": round(t, 6), "expected_fpir": expected_fpir(stats, t, mix),
                         "repeats": repeats, "off_list_identities_min": len(pop.names) - size,
                         **_false_positive_rate(pop, tops, offs, t, target, boot, bootstrap)})
    return rows


@dataclass
class _Population:
    """calibration_check's people: each identity's fixed template, and every face of every
    image as a non-mated probe, scored against every template."""

    names: list[str]
    usable: np.ndarray  # (identities,) bool: has a template
    n_refs: np.ndarray  # (identities,) reference faces fused into each template
    sims: np.ndarray  # (faces, identities) each probe face's score against each template
    face_image: np.ndarray  # (faces,) the image each face is of
    owner: np.ndarray  # (images,) the identity each image is of
    image_weight: np.ndarray  # (images,) 1 / the owner's images: each identity weighs 1

    @property
    def n_images(self) -> int:
        return len(self.owner)


def _population(identities: dict[str, list[Path]], faces: dict[str, ImageFaces],
                rng: np.random.Generator, enroll: int, central_only: bool) -> _Population:
    names = sorted(identities)
    templates, n_refs, probe_owner = [], [], []
    face_image, face_emb = [], []
    for j, name in enumerate(names):
        images = identities[name]
        order = rng.permutation(len(images))
        refs = [images[i] for i in order[: max(1, min(enroll, len(images) - 1))]]
        embs, q, _ = _subject_faces(refs, faces)  # a template, as enrollment builds it
        templates.append(fuse_embeddings(np.stack(embs), q) if embs else None)
        n_refs.append(len(embs))
        for p in images:  # every image of an identity off the watchlist is a non-mated probe
            f = faces[str(p)]
            img = len(probe_owner)
            probe_owner.append(j)
            c = f.central()
            rows = f.embeddings if not central_only else f.embeddings[[] if c is None else [c]]
            for e in rows:
                face_image.append(img)
                face_emb.append(e)
    usable = np.array([t is not None for t in templates])
    tmat = np.stack([t if t is not None else np.zeros_like(face_emb[0]) for t in templates])
    owner = np.array(probe_owner)
    return _Population(
        names, usable, np.array(n_refs), np.stack(face_emb) @ tmat.T, np.array(face_image),
        owner, 1.0 / np.bincount(owner, minlength=len(names))[owner])


def _watchlist_mix(pop: _Population, size: int) -> dict[int, int]:
    """{template size: subjects} of a watchlist of `size` drawn from the population: the
    deployed threshold depends on it, so it follows the population's mix."""
    refs = pop.n_refs[pop.usable]
    share = {int(k): float(np.mean(refs == k)) for k in np.unique(refs)}
    mix = {k: max(0, round(size * v)) for k, v in share.items()}
    mix[max(mix, key=lambda k: mix[k])] += size - sum(mix.values())
    return mix


def _draw_watchlists(pop: _Population, size: int, repeats: int, rng: np.random.Generator,
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each of `repeats` random watchlists of `size`: each image's top score on it, and
    which images are of identities off it."""
    tops, offs = [], []
    for _ in range(repeats):
        chosen = rng.choice(np.flatnonzero(pop.usable), size=size, replace=False)
        on = np.zeros(len(pop.names), bool)
        on[chosen] = True
        top = pop.sims[:, chosen].max(axis=1)  # each face's top score on this watchlist
        img_top = np.full(pop.n_images, -np.inf)
        np.maximum.at(img_top, pop.face_image, top)
        tops.append(img_top)
        offs.append(~on[pop.owner])
    return tops, offs


def _false_positive_rate(pop: _Population, tops: list[np.ndarray], offs: list[np.ndarray],
                         t: float, target: float, boot: np.random.Generator,
                         bootstrap: int) -> dict[str, object]:
    """Measured at threshold `t` over the draws: pooled, and per off-list identity (weighted)
    with its cluster-bootstrap interval, as ratios to `target`."""
    fp_id = np.zeros(len(pop.names))
    n_id = np.zeros(len(pop.names))
    fp = n = 0
    for img_top, off in zip(tops, offs, strict=True):
        hit = (img_top >= t) & off
        fp += int(hit.sum())
        n += int(off.sum())
        np.add.at(fp_id, pop.owner, hit * pop.image_weight)
        np.add.at(n_id, pop.owner, off * pop.image_weight)
    ids = np.flatnonzero(n_id > 0)
    rate = float(fp_id[ids].sum() / n_id[ids].sum())
    draws = boot.integers(0, len(ids), size=(bootstrap, len(ids)))
    reps = fp_id[ids][draws].sum(axis=1) / n_id[ids][draws].sum(axis=1)
    lo, hi = (float(x) for x in np.quantile(reps, [0.025, 0.975]))
    return {
        "nonmated_searches": n, "false_positives": fp,
        "measured_fpir": fp / n if n else 0.0,
        "measured_fpir_per_identity": rate,
        "ratio_per_identity": rate / target,
        "ratio_interval": [lo / target, hi / target],
    }


def write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")
