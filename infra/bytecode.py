"""Bytecode for the Lambda runtime's Python, compiled at build time.

Lambda's code (/var/task) and layers (/opt) are read-only, so a module without a matching .pyc is
compiled from source on every cold start and the result thrown away: measured here at ~0.45
CPU-s for the layer's packages and ~0.8 CPU-s for the function's (botocore, pynamodb,
powertools, pydantic, chalicelib), against a 1.5 CPU-s cold-start budget (docs/performance.md
section 6). `chalice package` writes no bytecode, so the function's zip gets it here.

unchecked-hash: the .pyc is used as it is, whatever the source file's mtime (zips built here stamp
every file alike, so timestamp-checked .pyc would be recompiled anyway). The compiling Python
must be the runtime's version (python3.12): a .pyc for another version is ignored.

    python -m infra.bytecode build/package/dev/deployment.zip --python build/venv-deploy/bin/python
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def compile_tree(root: Path, python: str) -> None:
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                    "unchecked-hash", str(root)], check=True)


def add_to_zip(path: Path, python: str) -> int:
    """Rewrite the zip with a __pycache__ entry beside each .py; returns the bytes added
    (unzipped)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with zipfile.ZipFile(path) as zf:
            modes = {i.filename: i.external_attr for i in zf.infolist()}
            zf.extractall(root)
        compile_tree(root, python)
        out = path.with_suffix(".tmp")
        added = 0
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for p in sorted(root.rglob("*")):
                if not p.is_file():
                    continue
                name = str(p.relative_to(root))
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = modes.get(name, (0o755 if os.access(p, os.X_OK)
                                                      else 0o644) << 16)
                info.compress_type = zipfile.ZIP_DEFLATED
                data = p.read_bytes()
                added += len(data) if name not in modes else 0
                zf.writestr(info, data)
        out.replace(path)
    return added


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.bytecode", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("zip", type=Path)
    p.add_argument("--python", required=True, help="the runtime's Python (3.12)")
    args = p.parse_args(argv)
    added = add_to_zip(args.zip, args.python)
    print(f"{args.zip}: bytecode added, {added / 1e6:.1f} MB unzipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
