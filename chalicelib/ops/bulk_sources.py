"""What a bulk enrollment reads (pure, no AWS): a folder with one sub-folder per subject, or a
manifest CSV (columns name, images, source, reason; optional faces).

Each subject gets an id derived from its name and its image paths as given (relative to the
folder or the manifest), so that a run started again after a crash recognises who is enrolled
already, wherever the folder has been moved to. A row that cannot be used (no name, a missing
file, a bad face choice) becomes a subject with `problem` set: reported, never fatal.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.matching.subject_face import FaceHint

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_IMAGES = 10  # per subject, as the REST API takes
MANIFEST_COLUMNS = ("name", "images", "source", "reason")
LIST_SEPARATOR = ";"


@dataclass(frozen=True)
class BulkSubject:
    subject_id: str
    name: str
    images: list[Path]  # absolute
    labels: list[str]  # each image as given (relative), for reports
    source: str
    reason: str
    hints: list[FaceHint | None] = field(default_factory=list)
    where: str = ""  # the folder or manifest line, for reports
    problem: str = ""  # why this subject cannot be enrolled as given ("" when it can)


def subject_id_for(name: str, labels: list[str]) -> str:
    digest = hashlib.sha256("\0".join([name, *labels]).encode("utf-8")).hexdigest()
    return f"s-{digest[:16]}"


def _subject(name: str, root: Path, labels: list[str], source: str, reason: str,
             hints: list[FaceHint | None], where: str, problem: str = "") -> BulkSubject:
    images = [(root / label).resolve() for label in labels]
    if not problem:
        if not name:
            problem = "no name"
        elif not labels:
            problem = "no image"
        elif len(labels) > MAX_IMAGES:
            problem = f"{len(labels)} images; at most {MAX_IMAGES} per subject"
        elif not source or not reason:
            problem = "no source or no reason (every subject needs both: who is listed and why)"
        else:
            missing = [label for label, p in zip(labels, images, strict=True) if not p.is_file()]
            if missing:
                problem = f"image not found: {', '.join(missing)}"
    return BulkSubject(subject_id_for(name, labels), name, images, labels, source, reason,
                       hints or [None] * len(labels), where, problem)


def from_folder(root: Path, source: str, reason: str,
                max_images: int = MAX_IMAGES) -> list[BulkSubject]:
    """One subject per sub-folder (its name, '_' read as a space), its images in name order
    (the first `max_images`); source and reason apply to every subject."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p.name for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        labels = [f"{d.name}/{f}" for f in files[:max_images]]
        out.append(_subject(d.name.replace("_", " "), root, labels, source, reason, [],
                            where=d.name))
    return out


def from_manifest(path: Path, source: str = "", reason: str = "") -> list[BulkSubject]:
    """One subject per row. Image paths are relative to the manifest's folder, separated by
    ';'; `faces` (optional) holds one face choice per image in the same order ('' for none, an
    index, or a box x1,y1,x2,y2). An empty source or reason takes the given default."""
    path = Path(path)
    root = path.parent
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: manifest lacks column(s) {', '.join(missing)} "
                             f"(needs {', '.join(MANIFEST_COLUMNS)}; optional: faces)")
        out = []
        for row in reader:
            where = f"{path.name}:{reader.line_num}"
            name = (row.get("name") or "").strip()
            labels = [p.strip() for p in (row.get("images") or "").split(LIST_SEPARATOR)
                      if p.strip()]
            hints, problem = _hints(row.get("faces") or "", len(labels))
            out.append(_subject(name, root, labels, (row.get("source") or "").strip() or source,
                                (row.get("reason") or "").strip() or reason, hints, where,
                                problem))
    return out


def _hints(text: str, n_images: int) -> tuple[list[FaceHint | None], str]:
    if not text.strip():
        return [None] * n_images, ""
    parts = [p.strip() for p in text.split(LIST_SEPARATOR)]
    if len(parts) != n_images:
        return [], f"faces: {len(parts)} choices for {n_images} images"
    try:
        return [FaceHint.parse(p) if p else None for p in parts], ""
    except ValueError as exc:
        return [], f"faces: {exc}"
