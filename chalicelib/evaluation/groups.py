"""Demographic differentials: FPIR and FNIR per group of identities, with intervals and tests.

Pure: takes the per-probe results of an open-set evaluation (`ProbeScores`, which carries each
probe's identity) and a map identity -> group label that the force supplies, and returns a
report. No labelled demographic set ships with the product: the labels are the force's own.

Definitions, at a threshold t (alert when the top score >= t, as `decide()` does):
- FPIR of group g = non-mated searches of g's people that alerted / non-mated searches of g.
- FNIR of group g = mated searches of g's enrolled people that missed (no alert on the right
  subject) / mated searches of g.

Probes of one person are correlated (a look-alike alerts on most of their photographs), so the
search is not the independent unit: the person is. Hence:
- the search-level rate gets a 95% cluster bootstrap interval, resampling the group's people
  with replacement (scipy.stats.bootstrap on paired per-person counts, percentile method);
- each group also gets the share of its people with at least one failure (alerted at least once
  / missed at least once), a binomial proportion over independent people, with its exact 95%
  Clopper-Pearson interval (chalicelib/ops/rates.py, the same as the record's);
- the test of a differential is on those per-person counts: each group against the rest,
  Fisher's exact test (two-sided, scipy.stats.fisher_exact), Holm-corrected across the groups
  at one threshold (Holm written here: scipy has no Holm step-down);
- as in NIST FRVT demographics reports, the ratio of the worst group's FPIR (and FNIR) to the
  best's, over the labelled groups.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from chalicelib.evaluation.openset import ProbeScores

# One exact interval for the product (the record's, pure Python: no scipy in the functions).
from chalicelib.ops.rates import clopper_pearson

UNLABELLED = "unlabelled"
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
_HEADER_NAMES = {"identity", "name", "id", "folder", "subject"}


# ---------------------------------------------------------------------------------------------
# The force's grouping


def parse_groups(text: str, fmt: str) -> dict[str, str]:
    """identity -> group label from CSV (identity,group; an optional header row) or JSON
    (an object {"identity": "group", ...}). An identity given two labels is an error."""
    pairs: list[tuple[str, str]] = []
    if fmt == "json":
        doc = json.loads(text)
        if not isinstance(doc, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
            raise ValueError("groups JSON must be an object mapping identity to group label")
        pairs = list(doc.items())
    elif fmt == "csv":
        rows = [r for r in csv.reader(io.StringIO(text))
                if r and r[0].strip() and not r[0].lstrip().startswith("#")]
        if rows and rows[0][0].strip().lower() in _HEADER_NAMES:
            rows = rows[1:]
        for n, r in enumerate(rows, 1):
            if len(r) < 2:
                raise ValueError(f"groups CSV row {n}: need identity,group")
            pairs.append((r[0], r[1]))
    else:
        raise ValueError(f"groups file format {fmt!r}: csv or json")
    out: dict[str, str] = {}
    for identity, label in pairs:
        identity, label = identity.strip(), label.strip()
        if not identity or not label:
            raise ValueError("groups file: empty identity or group label")
        if out.get(identity, label) != label:
            raise ValueError(f"groups file: identity {identity!r} has two group labels")
        out[identity] = label
    return out


def load_groups(path: Path) -> dict[str, str]:
    fmt = "json" if path.suffix.lower() == ".json" else "csv"
    return parse_groups(path.read_text(encoding="utf-8"), fmt)


def pseudo_groups(names: Iterable[str], labels: Sequence[str] = ("A", "B", "C")) -> dict[str, str]:
    """A MADE-UP grouping by a hash of each name: a test of the machinery, not demographics.

    Fixed for ever by the name (salted, so that it is independent of `name_half`'s split). On
    such labels no real differential is expected: whatever is flagged is chance or look-alikes.
    """
    def bucket(name: str) -> str:
        digest = hashlib.sha256(b"lfr-pseudo-group\0" + name.encode("utf-8")).digest()
        return labels[int.from_bytes(digest[:4], "big") % len(labels)]

    return {n: bucket(n) for n in names}


# ---------------------------------------------------------------------------------------------
# Statistics


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (controls the family-wise error rate)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def cluster_bootstrap(failures: np.ndarray, searches: np.ndarray, seed: int,
                      resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float] | None:
    """95% percentile interval of sum(failures)/sum(searches), resampling people (the pairs of
    per-person counts). None when it says nothing: fewer than 2 people, or no failure seen (every
    resample is then 0; the per-person Clopper-Pearson bound is the one to read)."""
    if len(searches) < 2 or failures.sum() == 0:
        return None
    res = stats.bootstrap(
        (failures.astype(float), searches.astype(float)),
        lambda f, s, axis=-1: f.sum(axis=axis) / s.sum(axis=axis),
        paired=True, vectorized=True, n_resamples=resamples, method="percentile",
        confidence_level=0.95, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class _PerPerson:
    """Searches and failures of each person of the population, by group."""

    group: np.ndarray  # (P,) group label of each person
    searches: np.ndarray  # (P,) int
    failures: np.ndarray  # (P,) int


def _per_person(identity: np.ndarray, failed: np.ndarray, groups: Mapping[str, str]) -> _PerPerson:
    people, inverse = np.unique(identity.astype(str), return_inverse=True)
    searches = np.bincount(inverse, minlength=len(people))
    failures = np.bincount(inverse, weights=failed.astype(float), minlength=len(people))
    labels = np.array([groups.get(p, UNLABELLED) for p in people], dtype=object)
    return _PerPerson(labels, searches.astype(int), failures.astype(int))


def _measure(pp: _PerPerson, order: list[str], seed: int, alpha: float) -> dict[str, object]:
    """One rate (FPIR or FNIR) per group, intervals, tests against the rest, worst/best ratio."""
    rows: dict[str, dict[str, object]] = {}
    failed_people = pp.failures > 0
    tests: list[tuple[str, float]] = []
    for gi, g in enumerate(order):
        mine = pp.group == g
        n_people, n_search = int(mine.sum()), int(pp.searches[mine].sum())
        if n_people == 0:
            continue
        k_search = int(pp.failures[mine].sum())
        k_people = int(failed_people[mine].sum())
        boot = cluster_bootstrap(pp.failures[mine], pp.searches[mine], seed + gi)
        row: dict[str, object] = {
            "people": n_people, "searches": n_search, "failures": k_search,
            "rate": k_search / n_search,
            "rate_ci95_cluster_bootstrap": None if boot is None else [round(b, 6) for b in boot],
            "people_failed": k_people, "people_rate": k_people / n_people,
            "people_rate_ci95_clopper_pearson": [round(b, 6) for b in
                                                 clopper_pearson(k_people, n_people)],
            "p_vs_rest": None, "p_holm": None, "significant": False, "direction": None,
        }
        rest = ~mine
        if rest.any():
            k_rest, n_rest = int(failed_people[rest].sum()), int(rest.sum())
            table = [[k_people, n_people - k_people], [k_rest, n_rest - k_rest]]
            p = float(stats.fisher_exact(table).pvalue)
            row["p_vs_rest"] = p
            row["direction"] = ("higher" if k_people / n_people > k_rest / n_rest else
                                "lower" if k_people / n_people < k_rest / n_rest else "same")
            tests.append((g, p))
        rows[g] = row
    for (g, _), adj in zip(tests, holm([p for _, p in tests]), strict=True):
        rows[g]["p_holm"] = adj
        rows[g]["significant"] = adj < alpha
    # Worst/best over the force's own groups; "unlabelled" is nobody's demographic.
    ranked = {g: r for g, r in rows.items() if g != UNLABELLED} or rows
    if not ranked:  # no searches of this kind at all (e.g. no mated probe)
        return {"groups": rows, "worst": None, "best": None, "ratio_worst_to_best": None,
                "differential": []}
    worst = max(ranked, key=lambda g: float(ranked[g]["rate"]))  # type: ignore[arg-type]
    best = min(ranked, key=lambda g: float(ranked[g]["rate"]))  # type: ignore[arg-type]
    best_rate = float(ranked[best]["rate"])  # type: ignore[arg-type]
    return {
        "groups": rows,
        "worst": worst, "best": best,
        # None when the best group had no failure at all (the ratio is unbounded).
        "ratio_worst_to_best": (float(ranked[worst]["rate"]) / best_rate  # type: ignore[arg-type]
                                if best_rate > 0 else None),
        "differential": [g for g, r in rows.items() if r["significant"]],
    }


def group_order(labels: Iterable[str]) -> list[str]:
    return sorted(set(labels) - {UNLABELLED}) + ([UNLABELLED] if UNLABELLED in labels else [])


def differentials_report(
    scores: ProbeScores,
    groups: Mapping[str, str],
    thresholds: Sequence[tuple[str, float]],
    *,
    alpha: float = ALPHA,
    seed: int = 0,
) -> dict[str, object]:
    """FPIR and FNIR per group at each (label, threshold); see the module docstring."""
    n_m, n_n = len(scores.mated_score), len(scores.nonmated_score)
    if len(scores.mated_identity) != n_m or len(scores.nonmated_identity) != n_n:
        raise ValueError("probe scores carry no per-probe identity")
    present = set(np.asarray(scores.mated_identity, str)) | set(
        np.asarray(scores.nonmated_identity, str))
    labels = [groups.get(p, UNLABELLED) for p in present]
    order = group_order(labels)
    out_rows = []
    for label, t in thresholds:
        alerted = scores.nonmated_score >= t
        missed = ~(scores.mated_correct & (scores.mated_score >= t))
        fp = _per_person(np.asarray(scores.nonmated_identity), alerted, groups)
        fn = _per_person(np.asarray(scores.mated_identity), missed, groups)
        out_rows.append({
            "label": label, "threshold": round(float(t), 6),
            "fpir": _measure(fp, order, seed, alpha),
            "fnir": _measure(fn, order, seed + 1000, alpha),
        })
    return {
        "alpha": alpha,
        "groups": order,
        "people_per_group": {g: labels.count(g) for g in order},
        "identities_in_file_not_in_data": len(set(groups) - present),
        "method": {
            "rate": "per search (the definition of FPIR/FNIR)",
            "rate_interval": f"95% cluster bootstrap over people, percentile, "
                             f"{BOOTSTRAP_RESAMPLES} resamples (a person's searches are "
                             "correlated)",
            "people_rate": "share of the group's people with at least one failure",
            "people_interval": "95% Clopper-Pearson exact",
            "test": "Fisher's exact, two-sided, each group's people vs the rest's, Holm "
                    "across groups at each threshold",
        },
        "thresholds": out_rows,
    }


# ---------------------------------------------------------------------------------------------
# The table on stdout


def _ci(ci: object, digits: int) -> str:
    if not ci:
        return "-"
    lo, hi = ci  # type: ignore[misc]
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def format_report(report: Mapping[str, object]) -> str:
    lines = []
    for row in report["thresholds"]:  # type: ignore[attr-defined]
        lines.append(f"threshold {row['threshold']:.4f} ({row['label']})")
        for key, name, what in (("fpir", "FPIR", "alerted"), ("fnir", "FNIR", "missed")):
            m = row[key]
            lines.append(f"  {'group':<12} {'people':>6} {'searches':>8} {'fails':>5} "
                         f"{name:>8} {'95% CI (people bootstrap)':>26}  {'people ' + what:>14}"
                         f" {'95% CI (Clopper-Pearson)':>24} {'p Holm':>7}")
            for g, r in m["groups"].items():
                p = "-" if r["p_holm"] is None else f"{r['p_holm']:.3f}"
                flag = f"  <- {r['direction']}" if r["significant"] else ""
                lines.append(
                    f"  {g:<12} {r['people']:>6} {r['searches']:>8} {r['failures']:>5} "
                    f"{r['rate']:>8.5f} {_ci(r['rate_ci95_cluster_bootstrap'], 5):>26}  "
                    f"{r['people_failed']:>6}/{r['people']:<7} "
                    f"{_ci(r['people_rate_ci95_clopper_pearson'], 4):>24} {p:>7}{flag}")
            if m["worst"] is None:
                lines.append(f"  {name}: no searches")
                continue
            ratio = m["ratio_worst_to_best"]
            worst_rate = m["groups"][m["worst"]]["rate"]
            ratio_text = (f"{ratio:.2f}" if ratio is not None else
                          "unbounded (best group had none)" if worst_rate else "none in any group")
            diff = ", ".join(m["differential"]) or "none"
            lines.append(f"  {name} worst/best {m['worst']}/{m['best']}: {ratio_text}; "
                         f"significant differential (Holm, alpha {report['alpha']}): {diff}")
    return "\n".join(lines)
