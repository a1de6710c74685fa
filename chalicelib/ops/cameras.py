"""Camera upload credentials: a presigned POST that only reaches the camera's own prefix."""

from __future__ import annotations

from typing import Any

from chalicelib.store import layout


def camera_upload_grant(
    s3: Any,
    bucket: str,
    deployment_id: str,
    camera_id: str,
    max_bytes: int,
    expires_s: int = 3600,
) -> dict[str, Any]:
    """{url, fields, prefix}: the gateway may POST objects whose key starts with prefix only."""
    prefix = layout.camera_prefix(deployment_id, camera_id)
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key=prefix + "${filename}",
        Conditions=[["starts-with", "$key", prefix], ["content-length-range", 1, max_bytes]],
        ExpiresIn=expires_s,
    )
    return {"url": post["url"], "fields": post["fields"], "prefix": prefix}
