"""Build the inference Lambda layer: numpy, onnxruntime, opencv-python-headless + the models.

    python layers/build_layer.py [--arch arm64|x86_64] [--function-zip PATH]

Wheels come from PyPI as manylinux binaries for the python3.12 runtime (--platform, --only-binary;
nothing is compiled). python3.12 because numpy >= 2.3, onnxruntime 1.32 and opencv 5 only ship
manylinux_2_28 wheels, which need the glibc 2.34 of Amazon Linux 2023 (python3.11 runs on Amazon
Linux 2, glibc 2.26). What Lambda never imports is trimmed (test suites, type stubs,
onnxruntime's C API library and Python tooling), and what is left is compiled to bytecode for
python3.12 (/opt is read-only: nothing compiled on Lambda is kept). The model files go to
/opt/models (their sha256 pinned in .chalice/config.json, the same model ids as everywhere
else): the detector's bytes as shipped, and the recognizer prepared here
(chalicelib.vision.models.prepare_recognizer), so that a cold start neither imports `onnx` nor
fixes the graph; the layer leaves `onnx` out. Prints the unzipped
size and fails if function + layer exceed Lambda's 250 MB.

arm64 is the default: the x86_64 build of the same wheels is ~75 MB larger (opencv's bundled
OpenBLAS and ffmpeg), and does not fit with the function. See docs/deploy.md for the measurements.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function + all layers, unzipped (Lambda quota)
PYTHON_VERSION = "3.12"
GLIBC_MINOR = 34  # Amazon Linux 2023
MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}
# File names under /opt/models: chalicelib.vision.models.layer_model_env() points functions at them.
DETECTOR_FILE = "retinaface-mnet025.onnx"  # = models.LAYER_DETECTOR_FILE (a test checks)
RECOGNIZER_FILE = "face_recognition_sface_2021dec_prepared.onnx"  # = models.LAYER_RECOGNIZER_FILE
# Needed only to prepare a model, which happens here: Lambda never imports it.
LAYER_EXCLUDES = {"onnx"}

# Paths (relative to python/) that Lambda never imports.
TRIM_DIRS = [
    "bin", "onnxruntime/transformers", "onnxruntime/tools", "onnxruntime/quantization",
    "onnxruntime/datasets", "numpy/f2py",
    "numpy/_core/include", "numpy/_core/lib", "numpy/doc",
]
TRIM_GLOBS = ["**/tests", "**/__pycache__", "**/*.pyi", "onnxruntime/capi/libonnxruntime.so*",
              "numpy/_core/_*_tests.*.so", "**/*.dist-info/RECORD"]


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def zip_unzipped_size(path: Path) -> int:
    with zipfile.ZipFile(path) as zf:
        return sum(i.file_size for i in zf.infolist())


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB ({n / 2**20:.1f} MiB)"


def record_sizes(figures: Path, layer_bytes: int, fn_bytes: int) -> None:
    """The measured sizes into docs/figures.json, the one place the docs' figures come from
    (tests/unit/test_figures.py then fails until every quote of them says the new values)."""
    doc = json.loads(figures.read_text())
    values = doc["figures"]["lambda_unzipped"]["values"]
    values.update(layer_mb=round(layer_bytes / 1e6, 1), function_mb=round(fn_bytes / 1e6, 1),
                  total_mb=round((layer_bytes + fn_bytes) / 1e6, 1),
                  limit_mb=round(LAMBDA_UNZIPPED_LIMIT / 1e6, 1))
    figures.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def layer_requirements() -> list[str]:
    """requirements-vision.txt, less what only the build needs."""
    lines = (REPO / "requirements-vision.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")
            and ln.split("==")[0].strip().lower() not in LAYER_EXCLUDES]


def install(target: Path, arch: str) -> None:
    machine = MACHINE[arch]
    platforms = [f"manylinux_2_{m}_{machine}" for m in range(17, GLIBC_MINOR + 1)]
    platforms.append(f"manylinux2014_{machine}")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION,
           "--abi", "cp312", "--abi", "abi3", "--abi", "none", "--target", str(target),
           *layer_requirements()]
    for p in platforms:
        cmd += ["--platform", p]
    subprocess.run(cmd, check=True)


def trim(site: Path) -> int:
    before = dir_size(site)
    for rel in TRIM_DIRS:
        shutil.rmtree(site / rel, ignore_errors=True)
    for pattern in TRIM_GLOBS:
        for p in list(site.glob(pattern)):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()
    return before - dir_size(site)


def compile_bytecode(site: Path, python: str) -> int:
    """Bytecode for the runtime's Python (infra/bytecode.py says why); returns the bytes added."""
    from infra.bytecode import compile_tree

    before = dir_size(site)
    compile_tree(site, python)
    return dir_size(site) - before


def add_models(models: Path) -> dict[str, str]:
    from chalicelib.vision.models import (
        default_detector_spec,
        default_recognizer_spec,
        load_model_bytes,
        prepare_recognizer,
    )

    models.mkdir(parents=True, exist_ok=True)
    out = {}
    detector = load_model_bytes(default_detector_spec())  # verified against the pinned sha256
    recognizer = prepare_recognizer(load_model_bytes(default_recognizer_spec()))
    for name, data in ((DETECTOR_FILE, detector), (RECOGNIZER_FILE, recognizer)):
        (models / name).write_bytes(data)
        out[name] = hashlib.sha256(data).hexdigest()
    return out


def write_zip(root: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                info = zipfile.ZipInfo(str(p.relative_to(root)), date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if os.access(p, os.X_OK) else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, p.read_bytes())
    tmp.replace(dest)


def smoke_test(root: Path, python: str) -> None:
    """Import the layer alone (python -S: no site-packages) and run the face pipeline on it."""
    code = (
        "import sys; from chalicelib.settings import Settings;"
        "from chalicelib.vision.factory import build_pipeline; import numpy as np, cv2;"
        f"s = Settings(detector_path='{root}/models/{DETECTOR_FILE}',"
        f"detector_sha256=sys.argv[1], recognizer_path='{root}/models/{RECOGNIZER_FILE}',"
        "recognizer_sha256=sys.argv[2], recognizer_prepared_sha256=sys.argv[3]);"
        "p = build_pipeline(s); img = np.zeros((480, 640, 3), np.uint8);"
        "print('layer smoke test: numpy', np.__version__, 'cv2', cv2.__version__,"
        "'model', p.model_id, 'faces on a blank frame', len(p.analyze(img).faces),"
        "'onnx imported', 'onnx' in sys.modules)"
    )
    from chalicelib.vision.models import (
        DETECTOR_SHA256,
        RECOGNIZER_PREPARED_SHA256,
        RECOGNIZER_SHA256,
    )

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{root}/python:{REPO}"}
    subprocess.run([python, "-S", "-c", code, DETECTOR_SHA256, RECOGNIZER_SHA256,
                    RECOGNIZER_PREPARED_SHA256], check=True, env=env)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--arch", choices=sorted(MACHINE), default="arm64")
    p.add_argument("--out", type=Path, default=REPO / "build" / "layer")
    p.add_argument("--function-zip", type=Path,
                   help="the function's deployment.zip (from chalice package) for the size check")
    p.add_argument("--python312", default=shutil.which("python3.12") or "",
                   help="a Python 3.12 to import the layer with (host architecture only)")
    p.add_argument("--record", type=Path,
                   help="write the measured sizes (arm64, with --function-zip) into this "
                        "figures file (docs/figures.json)")
    args = p.parse_args(argv)

    root = args.out / args.arch
    shutil.rmtree(root, ignore_errors=True)
    site = root / "python"
    print(f"installing manylinux wheels for python{PYTHON_VERSION} {args.arch} into {site}")
    install(site, args.arch)
    trimmed = trim(site)
    compiled = compile_bytecode(site, args.python312) if args.python312 else 0
    hashes = add_models(root / "models")
    layer_zip = args.out / f"lfr-inference-{args.arch}.zip"
    write_zip(root, layer_zip)

    layer_bytes = zip_unzipped_size(layer_zip)
    print(f"trimmed {mb(trimmed)} that Lambda never imports")
    print(f"bytecode for python{PYTHON_VERSION}: {mb(compiled)}" if compiled else
          "no bytecode compiled (no --python312): every cold start compiles the layer's modules")
    for name in sorted(os.listdir(site)):
        size = dir_size(site / name) if (site / name).is_dir() else (site / name).stat().st_size
        if size > 1_000_000:
            print(f"  python/{name:<32} {mb(size)}")
    for name, digest in hashes.items():
        print(f"  models/{name:<32} {mb((root / 'models' / name).stat().st_size)} "
              f"sha256 {digest[:12]}")
    print(f"layer {layer_zip.relative_to(REPO)}: zipped {mb(layer_zip.stat().st_size)}, "
          f"unzipped {mb(layer_bytes)}")

    if MACHINE[args.arch] == platform.machine() and args.python312:
        smoke_test(root, args.python312)
    else:
        print(f"(smoke test skipped: {args.arch} layer on a {platform.machine()} host)")

    if args.function_zip:
        fn_bytes = zip_unzipped_size(args.function_zip)
        total = fn_bytes + layer_bytes
        print(f"function {args.function_zip.name}: unzipped {mb(fn_bytes)}")
        print(f"function + layer unzipped: {mb(total)} of Lambda's {mb(LAMBDA_UNZIPPED_LIMIT)}")
        if args.record and args.arch == "arm64":  # the deployed architecture
            record_sizes(args.record, layer_bytes, fn_bytes)
            print(f"sizes recorded in {args.record}")
        if total > LAMBDA_UNZIPPED_LIMIT:
            print("FAIL: function + layers exceed Lambda's 250 MB unzipped limit",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
