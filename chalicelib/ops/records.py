"""The per-deployment transparency record, generated from the data (never typed in)."""

from __future__ import annotations

import html
from typing import Any

from chalicelib.ops.camera_health import camera_record
from chalicelib.ops.deployments import get_deployment
from chalicelib.ops.rates import METHOD, clopper_pearson
from chalicelib.store.tables import Tables

ENGAGED = ("engaged_no_action", "engaged_released", "arrested", "other_action")
UNKNOWN = "unknown"


def _sig(x: float) -> float:
    return float(f"{x:.6g}")  # rates of one in millions keep their digits


def false_alert_rate(false_alerts: int, of: int, unknown_because: str | None,
                     ) -> tuple[float | str, list[float] | str]:
    """(rate, exact 95% interval), or "unknown" for both: a rate over alerts not all
    adjudicated would count the pending ones as true, and one over nobody is no rate."""
    if unknown_because or of <= 0:
        return UNKNOWN, UNKNOWN
    lo, hi = clopper_pearson(false_alerts, of)
    return _sig(false_alerts / of), [_sig(lo), _sig(hi)]


def transparency_record(tables: Tables, deployment_id: str) -> dict[str, Any]:
    dep = get_deployment(tables, deployment_id)
    alerts = list(tables.Alert.by_deployment.query(deployment_id))
    true_alerts = sum(1 for a in alerts if a.status == "true_alert")
    false_alerts = sum(1 for a in alerts if a.status == "false_alert")
    faces = int(dep.faces_seen or 0)
    people = int(dep.passings or 0)  # tracks continued across batches: one per passing
    pending = sum(1 for a in alerts if a.status == "alert")
    target = float(dep.target_fpir) if dep.target_fpir is not None else None
    unknown_because = (f"{pending} alert{'s' * (pending != 1)} not yet adjudicated" if pending
                       else None if people else "no passers-by seen")
    per_person, per_person_ci = false_alert_rate(false_alerts, people, unknown_because)
    per_face, per_face_ci = false_alert_rate(false_alerts, faces, unknown_because)

    def iso(v: Any) -> str | None:
        return v.isoformat() if v else None

    return {
        "deployment_id": dep.deployment_id,
        "name": dep.name,
        "place": dep.place,
        "starts_at": iso(dep.starts_at),
        "ends_at": iso(dep.ends_at),
        "ended_at": iso(dep.ended_at),
        "status": dep.status,
        "authorising_officer": dep.authorising_officer,
        "reason": dep.reason,
        "cameras": list(dep.cameras or []),
        "watchlist_size": int(dep.watchlist_size or 0),
        "threshold": float(dep.threshold) if dep.threshold is not None else None,
        "target_fpir": target,
        "frames": int(dep.frames or 0),
        "faces_seen": faces,
        "people_seen": people,
        "alerts": len(alerts),
        "true_alerts": true_alerts,
        "false_alerts": false_alerts,
        "unadjudicated": pending,
        "lookalike_alerts": sum(1 for a in alerts if a.lookalike_of),
        "engagements": sum(1 for a in alerts if a.outcome in ENGAGED),
        "arrests": sum(1 for a in alerts if a.outcome == "arrested"),
        # Per passer-by (a passing), as the target is stated, beside what the target predicts;
        # and per face scanned, as the Met publishes.
        "expected_false_alerts": _sig(target * people) if target is not None else None,
        "measured_fpir": per_person,
        "measured_fpir_ci95": per_person_ci,
        "false_alerts_per_face": per_face,
        "false_alerts_per_face_ci95": per_face_ci,
        "rate_interval": METHOD,
        "rate_unknown_because": unknown_because,
        # How long each camera watched, and how many of its frames were never looked at: the
        # denominator that "people seen" needs.
        "camera_watch": camera_record(tables, dep),
    }


_LABELS = [
    ("place", "Place"), ("starts_at", "Starts"), ("ends_at", "Ends"), ("ended_at", "Ended"),
    ("authorising_officer", "Authorised by"), ("reason", "Reason"),
    ("watchlist_size", "Watchlist size"), ("target_fpir", "Target false alert rate"),
    ("threshold", "Threshold (calibrated)"), ("faces_seen", "Faces seen"),
    ("people_seen", "People seen (passers-by)"), ("alerts", "Alerts"),
    ("true_alerts", "True alerts"), ("false_alerts", "False alerts"),
    ("unadjudicated", "Not yet adjudicated"),
    ("lookalike_alerts", "Look-alike alerts (like one adjudicated false; not pushed)"),
    ("engagements", "Engagements"), ("arrests", "Arrests"),
    ("expected_false_alerts", "Expected false alerts (target \u00d7 passers-by)"),
    ("measured_fpir", "Measured false alert rate per passer-by"),
    ("false_alerts_per_face", "False alerts per face scanned"),
]


_OF = {"measured_fpir": ("people_seen", "passers-by"),
       "false_alerts_per_face": ("faces_seen", "faces scanned")}


def rate_text(record: dict[str, Any], key: str) -> str:
    """A rate of the record as people read it: "unknown (why)", or the rate and its interval."""
    rate = record[key]
    if rate == UNKNOWN:
        return f"unknown ({record['rate_unknown_because'] or 'nothing seen'})"
    lo, hi = record[f"{key}_ci95"]
    of, what = _OF[key]
    return (f"{rate:.3g}: {record['false_alerts']} false in {record[of]:,} {what}; "
            f"95% interval {lo:.3g} to {hi:.3g}")


def _cell(record: dict[str, Any], key: str) -> str:
    if key in _OF:
        return rate_text(record, key)
    value = record.get(key, "")
    return "" if value is None else str(value)


def _camera_row(c: dict[str, Any]) -> str:
    lost = c["frames_lost_share"]
    cells = [c["camera_id"], f"{c['watching_s'] / 60:.1f} min", f"{c['frames_captured']:,}",
             f"{c['frames_reached_worker']:,}", "" if lost is None else f"{100 * lost:.2f}%"]
    return "<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>"


def record_html(record: dict[str, Any]) -> str:
    rows = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(_cell(record, key))}</td></tr>"
        for key, label in _LABELS
    )
    cams = "\n".join(_camera_row(c) for c in record.get("camera_watch", []))
    title = html.escape(f"Live facial recognition deployment record: {record['name']}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:46rem;margin:2rem auto}}
th{{text-align:left;padding:.3rem 1rem .3rem 0}}td{{padding:.3rem 0}}</style></head>
<body><h1>{title}</h1><p>Deployment {html.escape(record['deployment_id'])}. Generated from the
system's own records; counts only, no images or names of people who were not matched.</p>
<table>{rows}</table>
<h2>Cameras</h2>
<table><tr><th>Camera</th><th>Watching</th><th>Frames captured</th><th>Frames looked at</th>
<th>Never looked at</th></tr>
{cams}</table>
<p>Rates are false alerts (adjudicated by an officer) over passers-by and over faces scanned,
each with its {html.escape(record['rate_interval'])}; unknown while any alert awaits
adjudication.</p></body></html>"""
