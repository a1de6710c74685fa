"""Is the face enrollment picks the right person's? A check on faces/dev (docs/enrollment.md).

    .venv/bin/python benchmarks/subject_face_check.py --data ../shared/data/faces/dev \\
        --workers 2 --cache /tmp/faces-dev.npz

For every photo with several usable faces where the enrollment rule
(chalicelib.matching.subject_face) picks one, the face picked is compared with the mean of the
person's other photos that show a single face (no doubt who those are). It should be the photo's
face most like them. Uses lfr eval's face cache (--cache: computed once, kept). Prints counts,
and the paths of photos where another face was more like the person (for a look).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None)
    args = p.parse_args(argv)

    from chalicelib.evaluation.openset import faces_of_folder

    identities, faces = faces_of_folder(args.data, args.workers, args.cache)
    picked = no_reference = 0
    wrong: list[str] = []
    for images in identities.values():
        fs = [faces[str(path)] for path in images]
        for k, f in enumerate(fs):
            if f.n < 2:
                continue
            i = f.subject_face()
            if i is None:
                continue
            single = [g.embeddings[0] for m, g in enumerate(fs)
                      if m != k and g.n == 1 and len(g.refused_boxes) == 0]
            if not single:
                no_reference += 1
                continue
            mean = np.mean(single, axis=0)
            picked += 1
            if int(np.argmax(f.embeddings @ (mean / np.linalg.norm(mean)))) != i:
                wrong.append(str(images[k]))
    print(json.dumps({"photos_with_several_usable_faces_picked": picked,
                      "another_face_more_like_the_person": len(wrong),
                      "no_single_face_photo_to_compare": no_reference, "look_at": wrong},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
