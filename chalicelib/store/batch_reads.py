"""What the worker reads before it decides on a batch, in one DynamoDB request.

Each batch needs the deployment (is it running, which threshold), the watchlist's version (is
the index in memory current), the camera's track state and whether the batch was applied
already (its id's item, store/tables.AppliedBatch). Four GetItems cost four round trips
and, on Lambda, ~4 CPU-ms each in botocore; one BatchGetItem with consistent reads gets the same
items. A deployment's watchlist is bound once, at its creation, so the container remembers it
after the first batch (checked against the deployment read with every batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.store.tables import Tables

_ATTEMPTS = 5


@dataclass
class BatchReads:
    deployment: Any | None  # None: no such deployment
    watchlist_version: int | None = None  # None: not read here (the index cache reads it)
    tracks_item: Any | None = None  # the camera's CameraTracks row, if any
    tracks_read: bool = False  # whether tracks_item is the answer (False: not asked)
    applied: bool = False  # the batch asked about was applied already (when tracks_read)


class BatchReader:
    """One per warm container."""

    def __init__(self) -> None:
        self._watchlist_of: dict[str, str] = {}

    def read(self, tables: Tables, ddb: Any, deployment_id: str, camera_key: str,
             batch_id: str = "") -> BatchReads:
        wl_id = self._watchlist_of.get(deployment_id)
        if wl_id is None:  # the first batch of this deployment in this container
            try:
                dep = tables.Deployment.get(deployment_id)
            except tables.Deployment.DoesNotExist:
                return BatchReads(None)
            if dep.watchlist_id:
                self._watchlist_of[deployment_id] = dep.watchlist_id
            return BatchReads(dep)
        D, W, CT, AB = tables.Deployment, tables.Watchlist, tables.CameraTracks, \
            tables.AppliedBatch
        names = {"d": D.Meta.table_name, "w": W.Meta.table_name, "t": CT.Meta.table_name,
                 "a": AB.Meta.table_name}
        request: dict[str, Any] = {
            names["d"]: {"Keys": [{"deployment_id": {"S": deployment_id}}],
                         "ConsistentRead": True},
            names["w"]: {"Keys": [{"watchlist_id": {"S": wl_id}}], "ConsistentRead": True,
                         "ProjectionExpression": "#v",
                         "ExpressionAttributeNames": {"#v": "version"}},
            names["t"]: {"Keys": [{"camera_key": {"S": camera_key}}], "ConsistentRead": True},
        }
        if batch_id:
            request[names["a"]] = {"Keys": [{"camera_key": {"S": camera_key},
                                             "batch_id": {"S": batch_id}}],
                                   "ConsistentRead": True, "ProjectionExpression": "batch_id"}
        got: dict[str, list[dict[str, Any]]] = {n: [] for n in names.values()}
        for _ in range(_ATTEMPTS):
            resp = ddb.batch_get_item(RequestItems=request)
            for table, items in resp.get("Responses", {}).items():
                got[table] += items
            request = resp.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise RuntimeError("DynamoDB left keys unprocessed after retries")
        if not got[names["d"]]:
            return BatchReads(None)
        dep = D.from_raw_data(got[names["d"]][0])
        if dep.watchlist_id != wl_id:  # never expected; read it the ordinary way
            self._watchlist_of.pop(deployment_id, None)
            return BatchReads(dep)
        wl = got[names["w"]]
        version = int(wl[0].get("version", {}).get("N", 0)) if wl else None
        tracks = CT.from_raw_data(got[names["t"]][0]) if got[names["t"]] else None
        return BatchReads(dep, version, tracks, tracks_read=True, applied=bool(got[names["a"]]))

