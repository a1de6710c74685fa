"""Shared fixtures. Integration tests run against a real moto server on 127.0.0.1.

`.ci/run` (or a developer) may start one and export LFR_TEST_ENDPOINT; otherwise the tests start
their own on a free port and stop it at the end. LFR_TEST_BACKEND=localstack (`make
test-localstack`) runs them on LocalStack in host mode, with DynamoDB and Cognito on moto server
(LFR_TEST_LOCALSTACK: a LocalStack already up); tests of what LocalStack cannot do skip, saying why.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
def local_session() -> Iterator[Any]:
    """moto server + every resource + the Chalice app and an event pump bound to it: one per
    pytest process (each xdist worker has its own server on its own port)."""
    from chalicelib.local.session import BACKENDS, local_session

    backend = backend_under_test()
    assert backend in BACKENDS, f"LFR_TEST_BACKEND={backend!r}: one of {BACKENDS}"
    # A stage of its own so a shared moto server can hold several runs side by side.
    with local_session(
        f"t{os.getpid()}",
        endpoint=os.environ.get("LFR_TEST_ENDPOINT"),
        # A failed record comes back at once, not after Lambda's backoff: the tests wait on
        # the queues, not on the clock.
        extra_env={"POWERTOOLS_SERVICE_NAME": "lfr-test", "LFR_PUMP_RETRY_S": "0"},
        backend=backend,  # type: ignore[arg-type]
        localstack_endpoint=os.environ.get("LFR_TEST_LOCALSTACK"),
    ) as ls:
        yield ls


@pytest.fixture(scope="session")
def local_stack(local_session: Any) -> dict[str, object]:
    ls = local_session
    return {"settings": ls.settings, "app": ls.app, "pump": ls.pump, "endpoint": ls.endpoint,
            "rt": ls.rt, "backend": ls.backend, "session": ls}


# The fault suite's cases in groups, each group on one xdist worker (make test: --dist
# loadgroup), so that a worker starts the suite's function processes (its zygote) once per group,
# not once per case; the groups themselves spread over the workers. A group: the test function,
# and for the 96 cold stream cases their kind of fault (fail, crash, kill); the warm cases of a
# refused snapshot (3) join the warm ones. Every other test is scheduled on its own, to keep
# every core busy, but for the `lfr eval` slice tests below.
FAULT_MODULE = "tests/integration/test_faults.py"


def fault_group(nodeid: str) -> str | None:
    module, _, rest = nodeid.partition("::")
    if module != FAULT_MODULE:
        return None
    function, _, params = rest.partition("[")
    if function == "test_fault":
        return f"{module}::{function}::{params.rstrip(']').rsplit('-', 1)[-1]}"
    if function == "test_fault_refused_snapshot":
        function = "test_fault_warm"
    return f"{module}::{function}"


# The `lfr eval` tests on a slice of faces/dev read one embedding of that slice
# (tests/integration/conftest.py `faces_dev_cache`, per pytest process): on one worker, it is
# made once per run.
FACES_DEV_MODULES = ("tests/integration/test_eval_slice.py",
                     "tests/integration/test_eval_groups.py")


def schedule_group(nodeid: str) -> str | None:
    """The xdist group of a test (make test: --dist loadgroup), or None: scheduled on its own."""
    if nodeid.partition("::")[0] in FACES_DEV_MODULES:
        return "faces-dev-slice"
    return fault_group(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` with the groups above (`schedule_group`). xdist 3.8 groups
    `xdist_group` marks by rewriting `item._nodeid`, which pytest 9 no longer reads, so its own
    loadgroup runs as plain load (seen here: one module's cases on both workers)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Groups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return schedule_group(nodeid) or nodeid

    return Groups(config, log)


def _uses_local_stack(item: pytest.Item) -> bool:
    return "local_stack" in getattr(item, "fixturenames", ())


@pytest.fixture(scope="module", autouse=True)
def clean_local_stack(request: pytest.FixtureRequest) -> None:
    """Each module that uses the local stack starts on an empty one, so what a test reads
    (pushes, listings, scans) costs the same late in a run as early. Autouse fixtures come
    first in their scope, so this runs before the module's own module-scoped fixtures."""
    module = request.module
    if not any(_uses_local_stack(i) for i in request.session.items
               if getattr(i, "module", None) is module):
        return
    ls = request.getfixturevalue("local_session")
    if ls.resettable and request.session.stash.get(_STACK_USED, False):
        ls.reset()  # the first module gets the stack as local_session made it: empty
    request.session.stash[_STACK_USED] = True


_STACK_USED = pytest.StashKey[bool]()  # a module has had this process's local stack


def backend_under_test() -> str:
    return os.environ.get("LFR_TEST_BACKEND") or "moto"


def skip_on_localstack(why: str) -> None:
    """For a test of what LocalStack (host mode, open-source 2026.3.0) cannot do."""
    if backend_under_test() == "localstack":
        pytest.skip(f"LocalStack: {why}")


_REPORTS: list[tuple[str, str]] = []
_MEASURED = "lfr-measured"


@pytest.fixture
def report(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Figures a test measured, printed at the end of the run (and kept in build/reports/).
    They travel on the test's report, so an xdist worker's reach the terminal too."""

    def add(text: str) -> None:
        request.node.user_properties.append((_MEASURED, text))
        out = REPO / "build" / "reports"
        out.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_")
        (out / f"{name}.txt").write_text(text + "\n")

    return add


_FAULTS: list[dict[str, Any]] = []
_FAULT_KEY = "lfr-fault"  # tests/integration/test_faults.py FAULT_KEY


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _REPORTS.extend((report.nodeid, text) for key, text in report.user_properties
                        if key == _MEASURED)
        _FAULTS.extend(json.loads(text) for key, text in report.user_properties
                       if key == _FAULT_KEY)


def fault_summary(results: list[dict[str, Any]]) -> str:
    """The fault suite's counts over every case of the run, whichever worker ran it (each case
    asserts its own; this is the sum the issue asks for)."""
    stream = [r for r in results if r["kind"] == "stream"]
    removal = [r for r in results if r["kind"] == "removal"]
    lines = []
    if stream:
        lines.append(
            f"fault cases {len(stream)}: alerts lost "
            f"{sum(1 for r in stream if r['alerts'] < 1)}, duplicated "
            f"{sum(max(0, r['alerts'] - 1) for r in stream)}; pushes lost "
            f"{sum(r['lost_pushes'] for r in stream)}, duplicated "
            f"{sum(r['dup_pushes'] for r in stream)} (all in the publish->record window; "
            f"{sum(1 for r in stream if r['window'])} cases strike there)")
    if removal:
        lines.append(
            f"removal fault cases {len(removal)}: removed yet still searched for "
            f"{sum(1 for r in removal if r['matchable_when_removed'])}; retries not answered "
            f"200 {sum(1 for r in removal if r['retry'] != 200)}")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if _FAULTS:
        text = fault_summary(_FAULTS)
        _REPORTS.append((FAULT_MODULE, text))
        out = REPO / "build" / "reports"
        out.mkdir(parents=True, exist_ok=True)
        (out / "fault-summary.txt").write_text(text + "\n")
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


_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")


def jpeg_scan_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each scan of a JPEG, found independently of the code under test: a
    segment's payload is skipped by its length, and a scan runs from its SOS marker to the next
    marker (0xFF not followed by 0x00, 0xFF or RST0-7)."""
    spans, pos = [], 2
    while (m := _MARKER.search(data, pos)) and data[m.start() + 1] != 0xD9:
        kind = data[m.start() + 1]
        if kind == 0x01:  # TEM: no length
            pos = m.start() + 2
            continue
        pos = m.start() + 2 + int.from_bytes(data[m.start() + 2 : m.start() + 4], "big")
        if kind == 0xDA:
            pos = _MARKER.search(data, pos).start()  # type: ignore[union-attr]
            spans.append((m.start(), pos))
    return spans


def jpeg_scans(data: bytes) -> int:
    return len(jpeg_scan_spans(data))


def progressive_jpeg(width: int, height: int, repeat_scan: int = 5, repeats: int = 0,
                     quality: int = 75) -> bytes:
    """A real progressive JPEG (OpenCV, i.e. libjpeg's 10-scan script) of a smooth gradient,
    with scan `repeat_scan` written `repeats` more times: what a hostile gateway could send.
    Scan 5 of that script, a luma AC refinement, is ~20 bytes and costs up to ~5 ms per copy
    to decode at 4K on this machine class."""
    import cv2
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width]
    image = np.dstack([xx * 255 // width, yy * 255 // height,
                       (xx + yy) * 255 // (width + height)]).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1,
                                           cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    data = buf.tobytes()
    start, end = jpeg_scan_spans(data)[repeat_scan]
    return data[:end] + data[start:end] * repeats + data[end:]
