"""`make package`: the deployable artefacts for a stage, validated offline.

    python -m infra.package --stage dev [--chalice build/venv-deploy/bin/chalice] [--layer ZIP]

Writes build/package/<stage>/:
  sam.json         chalice package output merged with infra/cfn.py (one SAM stack: functions,
                   inference layer, buckets, tables, queues, topic, KMS, AWS Batch GPU path)
  deployment.zip   the functions' code (app.py, chalicelib/, requirements.txt), with bytecode
                   for python3.12 added (infra/bytecode.py: Lambda cannot keep what it compiles)
  layer.zip        the inference layer (from `make layer`), referenced by sam.json
  infra.json       the same resources as a stand-alone stack, for `chalice deploy` users
then lints both templates with cfn-lint (offline; SAM transformed locally by samtranslator).
Deploy with `aws cloudformation package` + `deploy` (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from infra import bytecode, cfn, policies

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], **kw: object) -> None:
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--stage", default="dev")
    p.add_argument("--chalice", default=str(REPO / "build/venv-deploy/bin/chalice"))
    p.add_argument("--cfn-lint", default=str(REPO / "build/venv-deploy/bin/cfn-lint"))
    p.add_argument("--python312", default=str(REPO / "build/venv-deploy/bin/python"),
                   help="the runtime's Python, to compile the function's bytecode with")
    p.add_argument("--layer", type=Path, default=REPO / "build/layer/lfr-inference-arm64.zip")
    args = p.parse_args(argv)

    if policies.main(["--check"]) != 0:
        return 1
    out = REPO / "build" / "package" / args.stage
    shutil.rmtree(out, ignore_errors=True)
    plain = out.parent / f"{args.stage}-chalice"
    shutil.rmtree(plain, ignore_errors=True)
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "eu-west-2")}
    env.pop("AWS_ENDPOINT_URL", None)
    run([args.chalice, "package", "--stage", args.stage, str(plain)], cwd=REPO, env=env)
    chalice_sam = json.loads((plain / "sam.json").read_text())

    out.mkdir(parents=True)
    merge = out.parent / f"{args.stage}-merge.json"
    merge.write_text(json.dumps(cfn.merge_template(args.stage, chalice_sam, "./layer.zip"),
                                indent=2))
    run([args.chalice, "package", "--stage", args.stage, "--merge-template", str(merge),
         str(out)], cwd=REPO, env=env)
    shutil.rmtree(plain)
    added = bytecode.add_to_zip(out / "deployment.zip", args.python312)
    print(f"deployment.zip: {added / 1e6:.1f} MB of python3.12 bytecode added (infra/bytecode.py)")
    (out / "infra.json").write_text(json.dumps(cfn.infra_template(args.stage), indent=2))
    if args.layer.exists():
        shutil.copyfile(args.layer, out / "layer.zip")
    else:
        print(f"warning: {args.layer} not built (make layer); sam.json refers to ./layer.zip")

    run([args.cfn_lint, "--non-zero-exit-code", "error", str(out / "sam.json"),
         str(out / "infra.json")], cwd=REPO)
    sam = json.loads((out / "sam.json").read_text())
    types: dict[str, int] = {}
    for r in sam["Resources"].values():
        types[r["Type"]] = types.get(r["Type"], 0) + 1
    print(f"{out.relative_to(REPO)}: " + ", ".join(f"{n} {t}" for t, n in sorted(types.items())))
    for f in sorted(out.iterdir()):
        print(f"  {f.name:<16} {f.stat().st_size / 1e6:8.1f} MB")
    print("cfn-lint: no errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
