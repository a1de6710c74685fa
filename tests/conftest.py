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
    from chalicelib import clients, names
    from chalicelib.local import moto_server, resources
    from chalicelib.local.pump import EventPump, app_mappings, load_app
    from chalicelib.settings import Settings

    endpoint = os.environ.get("LFR_TEST_ENDPOINT")
    server = None
    if endpoint:
        moto_server.wait_ready(endpoint)
        env = {**moto_server.LOCAL_ENV, "AWS_ENDPOINT_URL": endpoint}
    else:
        server = moto_server.start()
        env = server.env()
    # A stage of its own so a shared moto server can hold several runs side by side.
    stage = f"t{os.getpid()}"
    env.update({"LFR_STAGE": stage, "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_SERVICE_NAME": "lfr-test"})
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    clients.reset()
    names.reset()
    from chalicelib import runtime

    runtime.settings.cache_clear()
    runtime.runtime.cache_clear()
    settings = Settings.from_env()
    resources.create_all(settings)
    app = load_app()
    pump = EventPump(settings, app_mappings(app, settings))
    try:
        yield {"settings": settings, "app": app, "pump": pump, "endpoint": env["AWS_ENDPOINT_URL"]}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if server:
            moto_server.stop(server)


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
