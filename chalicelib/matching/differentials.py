"""The differentials record: what a force's last `lfr eval --groups` found, kept small enough to
be read at deployment creation (stdlib only: the API's Lambda imports it, not scipy).

A record names the embedding space it was measured in, the thresholds evaluated and, at each,
the groups whose FPIR or FNIR differed significantly from the rest's. `threshold_warnings` says
what a deployment's threshold should be warned about. It never refuses: the decision to deploy
is the force's, and the warning goes on the audit trail (Bridges v SWP, ground 5: the public
sector equality duty asks the force to have checked for bias).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KIND = "lfr-demographic-differentials"
VERSION = 1


def _flagged(measure: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"group": g, "direction": r["direction"], "rate": round(float(r["rate"]), 6),
             "p_holm": r["p_holm"]}
            for g, r in measure["groups"].items() if r["significant"]]


def record_from_report(
    groups_report: Mapping[str, Any], model_id: str, *, evaluation: Mapping[str, Any]
) -> dict[str, Any]:
    """The record of one `lfr eval --groups` run (its groups section, and what was evaluated).
    Holds group labels, thresholds, rates and p-values: no identity, image or score of anyone."""
    rows = [{
        "threshold": r["threshold"], "label": r["label"],
        "fpir_differential": _flagged(r["fpir"]),
        "fnir_differential": _flagged(r["fnir"]),
        "fpir_ratio_worst_to_best": r["fpir"]["ratio_worst_to_best"],
    } for r in groups_report["thresholds"]]
    return {
        "kind": KIND, "version": VERSION, "model_id": model_id,
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "evaluation": dict(evaluation), "alpha": groups_report["alpha"],
        "groups": list(groups_report["groups"]),
        "thresholds": sorted(rows, key=lambda r: r["threshold"]),
    }


def parse_record(doc: Any) -> dict[str, Any]:
    """The record, checked; ValueError says what is wrong with it."""
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ValueError(f"not a {KIND} record")
    if doc.get("version") != VERSION:
        raise ValueError(f"differentials record version {doc.get('version')!r}, not {VERSION}")
    if not isinstance(doc.get("model_id"), str) or not isinstance(doc.get("thresholds"), list):
        raise ValueError("differentials record needs model_id and thresholds")
    for r in doc["thresholds"]:
        if not isinstance(r, dict) or not isinstance(r.get("threshold"), int | float) or \
                not isinstance(r.get("fpir_differential"), list):
            raise ValueError("differentials record: each threshold needs threshold and "
                             "fpir_differential")
    return doc


def load_record(path: str | Path) -> dict[str, Any]:
    return parse_record(json.loads(Path(path).read_text(encoding="utf-8")))


def threshold_warnings(
    record: Mapping[str, Any] | None, model_id: str, threshold: float
) -> list[dict[str, Any]]:
    """Warnings for a deployment at `threshold` in embedding space `model_id`.

    Lower thresholds mean more false positives, so a significant FPIR differential found at t
    applies to every threshold at or below t. A record of another embedding space says nothing
    about this one; a threshold below every one evaluated was not checked at all.
    """
    if record is None:
        return []
    when = record.get("evaluated_at", "")
    if record["model_id"] != model_id:
        return [{"kind": "differentials_other_space",
                 "message": f"the force's last differentials evaluation ({when}) was of "
                            f"embedding space {record['model_id']}, not this watchlist's "
                            f"{model_id}: demographic differentials were not evaluated for "
                            "this deployment's recognizer"}]
    rows = record["thresholds"]
    hits = [r for r in rows if r["fpir_differential"] and threshold <= r["threshold"]]
    out = []
    if hits:
        groups = sorted({f"{d['group']} ({d['direction']})"
                         for r in hits for d in r["fpir_differential"]})
        at = sorted(r["threshold"] for r in hits)
        out.append({
            "kind": "fpir_differential",
            "message": f"threshold {threshold:.4f} is at or below {at[0]:.4f}, where the "
                       f"force's evaluation of {when} found a significant difference in false "
                       f"positive rates between groups: {', '.join(groups)}",
            "threshold": round(float(threshold), 6),
            "differential_thresholds": at,
            "groups": groups,
        })
    evaluated = [r["threshold"] for r in rows]
    if evaluated and threshold < min(evaluated):
        out.append({
            "kind": "below_evaluated_thresholds",
            "message": f"threshold {threshold:.4f} is below every threshold the force's "
                       f"differentials evaluation of {when} examined (lowest "
                       f"{min(evaluated):.4f}): false positives are more frequent here and "
                       "were not checked for demographic differentials",
            "threshold": round(float(threshold), 6),
        })
    return out
