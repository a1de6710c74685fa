"""Write a MADE-UP grouping of the identity folders of DIR, for testing `lfr eval --groups`.

    .venv/bin/python benchmarks/pseudo_groups.py ../shared/data/faces/dev build/pseudo-groups.csv

Each identity goes to A, B or C by a salted hash of its folder name (groups.pseudo_groups). The
labels mean nothing about anyone: they exercise the machinery only. No labelled demographic set
ships with lfr; a force runs `lfr eval --groups` on its own labelled evaluation set.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from chalicelib.evaluation.groups import pseudo_groups
from chalicelib.evaluation.openset import list_identities


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    data, out = Path(argv[0]), Path(argv[1])
    groups = pseudo_groups(list_identities(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["identity", "group"])
        w.writerows(sorted(groups.items()))
    counts = {g: list(groups.values()).count(g) for g in sorted(set(groups.values()))}
    print(f"{out}: {len(groups)} identities, made-up groups {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
