"""Reference photos refused by enrollment: an earlier revision's rule against today's, on the
same images and the same analysis (docs/enrollment.md).

    .venv/bin/python benchmarks/enroll_refusals.py --data ../shared/data/faces/dev \\
        [--baseline 9425147] [--images first|all] [--workers 2] [--json PATH]

Each image is one single-image reference, as `lfr enroll` or the REST API would be given it.
The baseline's matching/template.py is read from git (`git show REV:...`) and run on today's
pipeline (the detector, gate and embedder did not change), with each image analysed once for
both rules. Printed: counts by outcome, no names.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import multiprocessing
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_W: dict[str, Any] = {}


class _Memo:
    """The pipeline, analysing each distinct image once for both rules."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline, self.model_id, self._last = pipeline, pipeline.model_id, ("", None)

    def analyze(self, image: Any) -> Any:
        key = hashlib.sha1(image.tobytes()).hexdigest()
        if self._last[0] != key:
            self._last = (key, self.pipeline.analyze(image))
        return self._last[1]


def _init(old_source: str) -> None:
    from chalicelib.settings import Settings
    from chalicelib.vision.factory import build_pipeline

    path = Path(tempfile.mkdtemp()) / "baseline_template.py"
    path.write_text(old_source)
    spec = importlib.util.spec_from_file_location("baseline_template", path)
    old = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["baseline_template"] = old  # dataclasses look their module up
    spec.loader.exec_module(old)  # type: ignore[union-attr]
    _W.update(old=old, pipeline=_Memo(build_pipeline(Settings())),
              max_pixels=Settings().max_reference_pixels)


def _both(path: str) -> tuple[str, str]:
    from chalicelib.matching.template import assess_reference

    data = Path(path).read_bytes()
    new = assess_reference(_W["pipeline"], path, data, None, _W["max_pixels"]).code or "used"
    try:
        _W["old"].build_template(_W["pipeline"], [(path, data)])
        old = "used"
    except ValueError as exc:  # the baseline's EnrollmentError
        text = str(exc)
        old = ("several faces" if "faces found" in text else
               "main face unusable" if "main face" in text else
               "no usable face" if "no usable face" in text else "unreadable")
    return old, new


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--baseline", default="9425147")
    p.add_argument("--images", choices=["first", "all", "flat"], default="first",
                   help="the first image of each identity (by name), every image, or every "
                        "image of a folder without identity folders (e.g. crowds/)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    old_source = subprocess.run(
        ["git", "show", f"{args.baseline}:chalicelib/matching/template.py"], cwd=REPO,
        check=True, capture_output=True, text=True).stdout
    folders = sorted(d for d in args.data.iterdir() if d.is_dir())
    if args.images == "flat":
        folders = [args.data]
    paths = []
    for d in folders:
        images = sorted(str(f) for f in d.iterdir() if f.suffix.lower() in (".jpg", ".png"))
        paths += images[:1] if args.images == "first" else images
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_init, initargs=(old_source,)) as pool:
        outcomes = pool.map(_both, paths, chunksize=8)
    old = Counter(o for o, _ in outcomes)
    new = Counter(n for _, n in outcomes)
    pairs = Counter(f"{o} -> {n}" for o, n in outcomes if o != n)
    n = len(paths)
    doc = {"images": n, "baseline": args.baseline,
           "baseline_outcomes": dict(old), "baseline_refused": n - old["used"],
           "baseline_refusal_rate": round((n - old["used"]) / n, 4),
           "outcomes": dict(new), "refused": n - new["used"],
           "refusal_rate": round((n - new["used"]) / n, 4), "changed": dict(pairs)}
    print(json.dumps(doc, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
