"""What a watchlist will probably catch, subject by subject, at the threshold it will run at.

An operator who reads this before authorising can add reference images for the subjects who
would probably be missed (issue 23): at the default target on a 10,000-subject list one
reference image catches about 8 in 10 later photos, three about 19 in 20 (docs/accuracy.md).
The threshold is the bound deployment's, or, for a list not yet bound, the one the default
target would give this list.
Counts and figures only: nothing here is biometric.
"""

from __future__ import annotations

from typing import Any

from chalicelib.matching.calibration import DEFAULT_TARGET_FPIR, STATS_DIR
from chalicelib.matching.expected_tpir import LIKELY_MISSED_BELOW, load_mated_model
from chalicelib.ops.deployments import calibrated_threshold, template_sizes
from chalicelib.store.tables import Tables

ADVICE = ("add reference images of this subject (up to three, of different days or "
          "settings) before authorising: with one image, about one later photo in five is "
          "missed at the default target on a large list")


def operating_threshold(tables: Tables, wl: Any, mix: dict[int, int]) -> dict[str, Any]:
    """The threshold the list runs (or would run) at, and where it comes from."""
    if wl.deployment_id:
        dep = tables.Deployment.get(wl.deployment_id, attributes_to_get=[
            "threshold", "target_fpir"])
        if dep.threshold is not None:
            return {"threshold": float(dep.threshold), "target_fpir": dep.target_fpir,
                    "basis": f"deployment {wl.deployment_id}"}
    size = sum(mix.values())
    return {"threshold": round(calibrated_threshold(wl.model_id, DEFAULT_TARGET_FPIR,
                                                    mix or {1: 1}), 6),
            "target_fpir": DEFAULT_TARGET_FPIR,
            "basis": f"the default target for a list of {max(size, 1)} subjects"}


def outlook(tables: Tables, wl: Any, subjects: list[dict[str, Any]],
            mix: dict[int, int] | None = None) -> dict[str, Any]:
    """Adds `expected_tpir` and `likely_missed` to each subject (dicts with n_images and
    reference_agreement) and returns the summary. `mix` ({references: subjects} of the whole
    list) defaults to that of `subjects`, which is then the whole list."""
    if mix is None:
        mix = {}
        for s in subjects:
            mix[s["n_images"]] = mix.get(s["n_images"], 0) + 1
    point = operating_threshold(tables, wl, mix)
    model = load_mated_model(STATS_DIR, wl.model_id)
    if model is None:
        return {**point, "expected_tpir": None,
                "why": f"no expected-TPIR model measured for {wl.model_id}"}
    for s in subjects:
        s["expected_tpir"] = model.expected_tpir(s["n_images"], s["reference_agreement"],
                                                 point["threshold"])
        s["likely_missed"] = s["expected_tpir"] < LIKELY_MISSED_BELOW
    flagged = sum(s["likely_missed"] for s in subjects)
    mean = sum(s["expected_tpir"] for s in subjects) / len(subjects) if subjects else None
    return {**point, "expected_tpir": None if mean is None else round(mean, 4),
            "likely_missed": flagged, "likely_missed_below": LIKELY_MISSED_BELOW,
            "advice": ADVICE if flagged else ""}


def enrolled_outlook(tables: Tables, watchlist_id: str,
                     enrolled: list[dict[str, Any]]) -> dict[str, Any]:
    """The same for subjects just enrolled, at the threshold of the list as it now stands."""
    wl = tables.Watchlist.get(watchlist_id)
    return outlook(tables, wl, enrolled, template_sizes(tables, watchlist_id))
