"""Every route of the app with hostile ids, bodies and parameters: nothing answers 5xx, and a
4xx says what is wrong (issue 11). The routes are read from the app, so a new one is covered
without editing this file."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

HOSTILE_IDS = ["x" * 2000, "..%2F..%2Fetc", "%00", "%C3%A9", "%F0%9F%98%80", "a%20b", "-",
               "%25", "wl-" + "%FF", "1e309", "null", "%7B%7D", "dep-x%2Fcam"]
HOSTILE_BODIES: list[str] = [
    "", "{not json", "[]", "null", "1", '"text"', "{}", "[" * 5000 + "]" * 5000,
    json.dumps({"a": {"b": {"c": [1, 2, {"d": None}]}}}),
    "\ufeff{}", '{"name": "\\ud800"}', "{" + '"k": 1,' * 10000 + '"k": 2}',
]
FIELD_VALUES: list[Any] = [None, "", " ", "x" * 100_000, -1, 0, 1e308, 10**40, True, [], {},
                           ["x"] * 1000, "\u0000", "2026-13-45T99:00:00Z", "é" * 500]
QUERIES = ["?limit=-1", "?limit=99999999999999999999", "?limit=abc", "?since=yesterday",
           "?exp=abc&sig=zz", "?exp=1&sig=%C3%A9", "?" + "a=1&" * 500]


def _routes(app: Any) -> list[tuple[str, str]]:
    return [(path, method) for path, methods in app.routes.items() for method in methods]


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def _fields(app: Any) -> set[str]:
    """Every body field any route's model knows (from the API's pydantic models)."""
    from chalicelib import api

    names: set[str] = set()
    for obj in vars(api).values():
        if isinstance(obj, type) and issubclass(obj, api._Body) and obj is not api._Body:
            names |= set(obj.model_fields)
    return names


@pytest.fixture
def everyone(api) -> str:  # type: ignore[no-untyped-def]
    """A token with every role, so refusals come from the input, not from authorisation."""
    return api.token("fuzz-1", ["operator", "officer", "auditor", "camera"], ["dep-x"],
                     camera="dep-x/cam-1")


def _send(api: Any, method: str, path: str, token: str, raw: str | None) -> Any:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    kwargs: dict[str, Any] = {"headers": headers}
    if raw is not None:
        kwargs["body"] = raw
    return getattr(api.client.http, method.lower())(path, **kwargs)


def test_no_route_answers_5xx_to_hostile_input(api, local_stack, everyone, report) -> None:
    app = local_stack["app"]
    routes = _routes(app)
    fields = sorted(_fields(app))
    tried = five = 0
    failures = []

    def check(method: str, path: str, raw: str | None) -> None:
        nonlocal tried, five
        tried += 1
        resp = _send(api, method, path, everyone, raw)
        if resp.status_code >= 500:
            five += 1
            failures.append((method, path[:80], (raw or "")[:60], resp.status_code,
                             resp.body[:200]))
        elif resp.status_code >= 400 and resp.headers.get("Content-Type", "").startswith(
                "application/json"):
            assert resp.json_body.get("Message"), (method, path, "a 4xx without a reason")

    for path, method in routes:
        for value in HOSTILE_IDS:
            check(method, _fill(path, value), "{}" if method == "POST" else None)
        for q in QUERIES:
            check(method, _fill(path, "dep-x") + q, "{}" if method == "POST" else None)
        if method != "POST":
            continue
        target = _fill(path, "dep-x")
        for raw in HOSTILE_BODIES:
            check(method, target, raw)
        for name in fields:
            for value in FIELD_VALUES:
                check(method, target, json.dumps({name: value}))
    report(f"API fuzz: {len(routes)} routes, {tried} hostile requests, {five} answered 5xx")
    assert not failures, failures[:10]
