"""The audit trail: who did what to which watchlist, deployment or alert, and when."""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib.store.tables import Tables, utcnow


def entry(
    tables: Tables, scope: str, actor: str, action: str, target: str,
    **details: str | int | float | None,
) -> Any:
    """One entry, unsaved (for a transaction that writes it with what it records)."""
    now = utcnow()
    return tables.Audit(
        scope=scope,
        entry=f"{now.isoformat()}#{uuid.uuid4().hex[:8]}",
        actor=actor,
        action=action,
        target=target,
        details={k: str(v) for k, v in details.items() if v is not None},
        at=now,
    )


def record(
    tables: Tables, scope: str, actor: str, action: str, target: str,
    **details: str | int | float | None,
) -> None:
    """Append one entry. Details are ids and counts: never images, embeddings or non-matches."""
    entry(tables, scope, actor, action, target, **details).save(
        condition=tables.Audit.entry.does_not_exist())


def entries(tables: Tables, scope: str) -> list[dict[str, Any]]:
    return [
        {"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "target": e.target,
         "details": dict(e.details.as_dict() if hasattr(e.details, "as_dict") else e.details)}
        for e in tables.Audit.query(scope)
    ]


def watchlist_scope(watchlist_id: str) -> str:
    return f"watchlist#{watchlist_id}"
