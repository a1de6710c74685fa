"""`make test-localstack`: the integration suites on each local AWS, and a table of the results.

    python -m tests.backend_matrix [--backend moto --backend localstack] [--suite stream ...]
                                   [--require-pass] [--report NAME.md]

moto: moto server for everything. localstack: LocalStack in host mode (its own virtualenv on a
Python >= 3.12, installed on first use) for every service it serves, DynamoDB and Cognito on
moto server (per-service endpoints). Both servers are started here once per backend, shared by
its suites (each pytest run takes a stage of its own), and stopped at the end. Not part of
`.ci/run`: LocalStack is optional. The table goes to stdout and build/reports/backends.md.

`make test-grant-localstack` (run by `.ci/run` after `make test`) runs one test alone on
LocalStack: the camera grant's limits enforced (`--suite "camera grant" --require-pass`), which
moto server does not check. A Python >= 3.12 missing or LocalStack's install failing fails it,
saying why; so does a test that skipped instead of passing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITES = {
    "stream path": "tests/integration/test_stream_path.py",
    "accountability": "tests/integration/test_accountability.py",
    "security": "tests/integration/test_api_security.py",
    "backend differences": "tests/integration/test_backends.py",
    "chalice deploy": "tests/integration/test_deploy_local.py",
}
# Run only when named with --suite: one test of the suites above, alone (CI).
ALONE = {
    "camera grant": "tests/integration/test_backends.py::test_a_camera_grant_s_post_policy",
}
BACKENDS = ("moto", "localstack")


@dataclass
class Result:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    skips: list[str] = field(default_factory=list)

    def cell(self) -> str:
        parts = [f"{self.passed} passed"] if self.passed or not self.skipped else []
        if self.failed:
            parts.append(f"**{self.failed} failed**")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return f"{', '.join(parts)} ({self.seconds:.0f} s)"


@contextmanager
def servers(backend: str, logs: Path) -> Iterator[dict[str, str]]:
    """The servers of one backend, up for all its suites: the test environment that names them."""
    from chalicelib.local import localstack, moto_server

    moto = moto_server.start(log_path=logs / f"moto-{backend}.log")
    ls = None
    try:
        env = {"LFR_TEST_BACKEND": backend, "LFR_TEST_ENDPOINT": moto.endpoint}
        if backend == "localstack":
            ls = localstack.start(log_path=logs / "localstack.log")
            print(f"LocalStack {ls.endpoint}; DynamoDB and Cognito on moto server "
                  f"{moto.endpoint}", flush=True)
            env["LFR_TEST_LOCALSTACK"] = ls.endpoint
        yield env
    finally:
        if ls:
            localstack.stop(ls)
        moto_server.stop(moto)


def run_suite(path: str, env: dict[str, str], report: Path) -> Result:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_ENDPOINT_URL", "LFR_TEST_"))}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", path, "-q", "-p", "no:cacheprovider",
                           f"--junitxml={report}"], cwd=REPO, env={**base, **env})
    result = Result(seconds=time.monotonic() - t0)
    if not report.exists():
        result.failed = 1
        return result
    for case in ET.parse(report).getroot().iter("testcase"):
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            result.failed += 1
        elif skipped is not None:
            result.skipped += 1
            result.skips.append(f"{case.get('name')}: {skipped.get('message', '')}")
        else:
            result.passed += 1
    if proc.returncode not in (0, 5) and not result.failed:
        result.failed = 1
    return result


def table(results: dict[str, dict[str, Result]], backends: list[str],
          startup: dict[str, float]) -> str:
    lines = ["| suite | " + " | ".join(backends) + " |",
             "|---|" + "---|" * len(backends)]
    for suite, row in results.items():
        lines.append(f"| {suite} | " + " | ".join(row[b].cell() if b in row else "-"
                                                 for b in backends) + " |")
    lines.append("| servers up (start to ready) | "
                 + " | ".join(f"{startup.get(b, 0):.1f} s" for b in backends) + " |")
    totals = [sum(row[b].seconds for row in results.values() if b in row) + startup.get(b, 0)
              for b in backends]
    lines.append("| **total time** | " + " | ".join(f"**{t:.0f} s**" for t in totals) + " |")
    skips = [f"- {b}, {suite}: {why}" for suite, row in results.items()
             for b in backends if b in row for why in row[b].skips]
    if skips:
        lines += ["", "Skipped, and why:", *skips]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.backend_matrix", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", action="append", choices=BACKENDS)
    p.add_argument("--suite", action="append", choices=[*SUITES, *ALONE])
    p.add_argument("--require-pass", action="store_true",
                   help="fail unless each suite passed a test: a run that only skipped fails")
    p.add_argument("--report", default="backends.md", help="its name in build/reports/")
    args = p.parse_args(argv)
    backends = args.backend or list(BACKENDS)
    suites = args.suite or list(SUITES)
    out = REPO / "build" / "reports"
    out.mkdir(parents=True, exist_ok=True)
    if "localstack" in backends:
        from chalicelib.local import localstack

        try:
            localstack.ensure_installed()
        except localstack.LocalStackUnavailable as exc:
            print(f"cannot run on LocalStack: {exc}", file=sys.stderr)
            return 2
    results: dict[str, dict[str, Result]] = {s: {} for s in suites}
    startup: dict[str, float] = {}
    for backend in backends:
        t0 = time.monotonic()
        with servers(backend, out) as env:
            startup[backend] = time.monotonic() - t0
            for suite in suites:
                print(f"== {suite} on {backend}", flush=True)
                junit = out / f"backends-{backend}-{suite.replace(' ', '_')}.xml"
                junit.unlink(missing_ok=True)
                results[suite][backend] = run_suite({**SUITES, **ALONE}[suite], env, junit)
    text = table(results, backends, startup)
    (out / args.report).write_text(text + "\n")
    print("\n" + text)
    failed = any(r.failed for row in results.values() for r in row.values())
    unproven = [f"{suite} on {b}" for suite, row in results.items() for b, r in row.items()
                if args.require_pass and not r.passed]
    if unproven:
        print(f"nothing passed (skipped, or no test ran): {', '.join(unproven)}",
              file=sys.stderr)
    return 1 if failed or unproven else 0


if __name__ == "__main__":
    sys.exit(main())
