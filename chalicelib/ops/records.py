"""The per-deployment transparency record, generated from the data (never typed in)."""

from __future__ import annotations

import html
from typing import Any

from chalicelib.ops.deployments import get_deployment
from chalicelib.store.tables import Tables

ENGAGED = ("engaged_no_action", "engaged_released", "arrested", "other_action")


def transparency_record(tables: Tables, deployment_id: str) -> dict[str, Any]:
    dep = get_deployment(tables, deployment_id)
    alerts = list(tables.Alert.by_deployment.query(deployment_id))
    true_alerts = sum(1 for a in alerts if a.status == "true_alert")
    false_alerts = sum(1 for a in alerts if a.status == "false_alert")
    faces = int(dep.faces_seen or 0)
    people = int(dep.passings or 0)  # tracks continued across batches: one per passing

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
        "target_fpir": float(dep.target_fpir) if dep.target_fpir is not None else None,
        "frames": int(dep.frames or 0),
        "faces_seen": faces,
        "people_seen": people,
        "alerts": len(alerts),
        "true_alerts": true_alerts,
        "false_alerts": false_alerts,
        "unadjudicated": sum(1 for a in alerts if a.status == "alert"),
        "engagements": sum(1 for a in alerts if a.outcome in ENGAGED),
        "arrests": sum(1 for a in alerts if a.outcome == "arrested"),
        # Per passer-by (a track), as the target is stated; and per face, as the Met publishes.
        "measured_fpir": round(false_alerts / people, 8) if people else None,
        "false_alerts_per_face": round(false_alerts / faces, 8) if faces else None,
    }


_LABELS = [
    ("place", "Place"), ("starts_at", "Starts"), ("ends_at", "Ends"), ("ended_at", "Ended"),
    ("authorising_officer", "Authorised by"), ("reason", "Reason"),
    ("watchlist_size", "Watchlist size"), ("target_fpir", "Target false alert rate"),
    ("threshold", "Threshold (calibrated)"), ("faces_seen", "Faces seen"),
    ("people_seen", "People seen (passings)"), ("alerts", "Alerts"),
    ("true_alerts", "True alerts"), ("false_alerts", "False alerts"),
    ("unadjudicated", "Not yet adjudicated"), ("engagements", "Engagements"),
    ("arrests", "Arrests"), ("measured_fpir", "Measured false alert rate (per person)"),
]


def record_html(record: dict[str, Any]) -> str:
    rows = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(record.get(key, '')))}</td></tr>"
        for key, label in _LABELS
    )
    title = html.escape(f"Live facial recognition deployment record: {record['name']}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:46rem;margin:2rem auto}}
th{{text-align:left;padding:.3rem 1rem .3rem 0}}td{{padding:.3rem 0}}</style></head>
<body><h1>{title}</h1><p>Deployment {html.escape(record['deployment_id'])}. Generated from the
system's own records; counts only, no images or names of people who were not matched.</p>
<table>{rows}</table></body></html>"""
