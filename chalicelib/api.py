"""Request bodies of the REST API, validated with pydantic so a bad body gets a clear 400."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class DeviceRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    officer_id: str = Field(min_length=1, max_length=128)
    platform: Literal["gcm", "apns"]
    push_token: str = Field(min_length=8, max_length=4096)


def validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
    )
