"""Fault cases of a van's uplink against what the gateway captured, sent and shed, and the
alerts expected, raised and duplicated (issue 21's closing table). Not a test: prints figures.

Each case streams the same 44 s walk-by at live pace (2 fps, five watchlisted people passing at
2, 12, 22, 32.5 and 38.5 s) through its own proxy, with one fault from 8 to 28 s (20 s), against
the real API over HTTP and moto server, and the worker and notifier through the event pump.
Expected alerts: everyone who passed while the link was up, or whose batch was still younger than
the retry limit when the link came back. With the default limit (120 s) that is all five; with
--max-age-s 10 the person at 12 s is past it (16 s old at 28 s) and is expected to be shed.

    .venv/bin/python benchmarks/gateway_faults.py [--max-age-s 120] [--cases down,503]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FPS, SECONDS = 2.0, 44
PASSERS = {"Cory_Gardner": 2.0, "Barbara_Lee": 12.0, "Amy_Klobuchar": 22.0,
           "Anna_Eshoo": 32.5, "Adrian_Smith": 38.5}
OUTAGE = (8.0, 28.0)
CASES = {
    "none": [],
    "down (refused)": [(OUTAGE[0], "down"), (OUTAGE[1], "up")],
    "black-holed": [(OUTAGE[0], "blackhole"), (OUTAGE[1], "up")],
    "reset": [(OUTAGE[0], "reset"), (OUTAGE[1], "up")],
    "503": [(OUTAGE[0], "503"), (OUTAGE[1], "up")],
    "slow (0.5 s/request)": [(OUTAGE[0], "slow"), (OUTAGE[1], "up")],
    "grants refused (403)": [(OUTAGE[0], "expire_grants"), (OUTAGE[1], "up")],
}


def expected(max_age_s: float, plan: list[tuple[float, str]]) -> set[str]:
    """Who should alert: passed while the link was up, or within the retry limit of its
    return. A slow link still delivers."""
    down = [(at, nxt[0]) for (at, mode), nxt in zip(plan, plan[1:], strict=False)
            if mode not in ("up", "slow")]
    out = set()
    for name, at in PASSERS.items():
        hit = next(((a, b) for a, b in down if a <= at < b), None)
        if hit is None or hit[1] - at < max_age_s:
            out.add(name.replace("_", " "))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-age-s", type=float, default=120.0)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    from chalicelib.local.session import local_session
    from tests.gateway_walk import draw_walk, live_options, walk_through_uplink
    from tests.integration.conftest import build_scenario, demo_person
    from tests.integration.http_api import serve_api

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, \
            local_session("gwfaults", extra_env={"LFR_PUMP_RETRY_S": "0"}) as ls, \
            serve_api(ls.app) as api:
        clip = Path(tmp) / "clip"
        draw_walk(clip, PASSERS, SECONDS, FPS)
        secret = ls.settings.local_auth_secret
        for case in args.cases.split(","):
            plan = CASES[case]
            sc = build_scenario(ls.rt, str(ls.endpoint), {n.replace("_", " "): [
                demo_person(n, 1)] for n in PASSERS})
            report, _ = walk_through_uplink(clip, api, secret, sc.deployment_id, sc.camera_id,
                                            plan, live_options(FPS, args.max_age_s), Path(tmp))
            ls.pump.drain(timeout=600)
            s = report.summary
            raised = Counter(a.display_name for a in sc.alerts())
            want = expected(args.max_age_s, plan)
            row = {"case": case, "captured": s["frames_read"], "sent": s["frames_sent"],
                   "shed": s["frames_shed"], "accounted": s["frames_read"] == s["frames_sent"]
                   + s["frames_shed_total"], "retries": s["retries"],
                   "grant_renewals": s["grant_renewals"], "alerts_expected": len(want),
                   "alerts_raised": sum(1 for n in raised if n in want),
                   "alerts_missed": sorted(want - set(raised)),
                   "alerts_unexpected": sorted(set(raised) - want),
                   "duplicated": sum(n - 1 for n in raised.values())}
            rows.append(row)
            print(f"{case:22s} captured {row['captured']:3d} sent {row['sent']:3d} "
                  f"shed {row['shed']} accounted {row['accounted']} retries {row['retries']} "
                  f"renewals {row['grant_renewals']} | alerts expected {row['alerts_expected']} "
                  f"raised {row['alerts_raised']} duplicated {row['duplicated']} "
                  f"missed {row['alerts_missed']} unexpected {row['alerts_unexpected']}",
                  flush=True)
    print("\n| fault, 8-28 s | captured | sent | shed (reason) | retries | renewals | "
          "alerts expected | raised | duplicated |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        shed = ", ".join(f"{n} {k}" for k, n in r["shed"].items()) or "0"
        print(f"| {r['case']} | {r['captured']} | {r['sent']} | {shed} | {r['retries']} | "
              f"{r['grant_renewals']} | {r['alerts_expected']} | {r['alerts_raised']} | "
              f"{r['duplicated']} |")
    out = {"max_age_s": args.max_age_s, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
