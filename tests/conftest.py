"""Shared fixtures. Integration tests run against a real moto server on 127.0.0.1.

`.ci/run` (or a developer) may start one and export LFR_TEST_ENDPOINT; otherwise the tests start
their own on a free port and stop it at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data, or skip: that data is for internal testing and not shipped."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (internal test data in ../shared/data, absent here)")
    return path


@pytest.fixture(scope="session")
def local_stack() -> Iterator[dict[str, object]]:
    """moto server + every resource + the Chalice app and an event pump bound to it."""
    from chalicelib.local.session import local_session

    # A stage of its own so a shared moto server can hold several runs side by side.
    with local_session(
        f"t{os.getpid()}",
        endpoint=os.environ.get("LFR_TEST_ENDPOINT"),
        extra_env={"POWERTOOLS_SERVICE_NAME": "lfr-test"},
    ) as ls:
        yield {"settings": ls.settings, "app": ls.app, "pump": ls.pump, "endpoint": ls.endpoint,
               "rt": ls.rt}


_REPORTS: list[tuple[str, str]] = []


@pytest.fixture
def report(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Figures a test measured, printed at the end of the run (and kept in build/reports/)."""

    def add(text: str) -> None:
        _REPORTS.append((request.node.nodeid, text))
        out = REPO / "build" / "reports"
        out.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_")
        (out / f"{name}.txt").write_text(text + "\n")

    return add


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if _REPORTS:
        terminalreporter.section("measured figures")
        for node, text in _REPORTS:
            terminalreporter.write_line(f"{node}:")
            for line in text.splitlines():
                terminalreporter.write_line(f"    {line}")


def flag_encrypted(zip_bytes: bytes, member: str) -> bytes:
    """The archive with `member` flagged encrypted (general purpose bit 0) in its local and
    central-directory headers, as a hostile gateway could send it."""
    data, name = bytearray(zip_bytes), member.encode()
    for sig, flags_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        at = data.index(sig)
        while data[at + name_at : at + name_at + len(name)] != name:
            at = data.index(sig, at + 4)
        data[at + flags_at] |= 0x1
    return bytes(data)
