"""Notifier settings: every environment variable the notifier reads, in one place."""

from __future__ import annotations

import base64
import binascii
import socket
from typing import Annotated, Self
from urllib.parse import urlsplit
from uuid import uuid4

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from mpr_shared.auth import ApiKeys
from mpr_shared.settings import CommonSettings, Environment

# A fixed secret so local receivers can verify signatures; production refuses it.
DEV_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"mpr-development-webhook-secret").decode()


def _instance_id() -> str:
    return f"{socket.gethostname()}-{uuid4().hex[:6]}"


class NotifierSettings(CommonSettings):
    """Settings of the notifier (SSE stream and webhooks)."""

    notifier_host: str = Field(
        "127.0.0.1", validation_alias="NOTIFIER_HOST", description="Address the HTTP server binds."
    )
    notifier_port: int = Field(
        8001, ge=1, le=65535, validation_alias="NOTIFIER_PORT", description="HTTP port."
    )
    instance_id: str = Field(
        default_factory=_instance_id,
        validation_alias="NOTIFIER_INSTANCE_ID",
        description="Replica name; names this replica's live queue mpr.notifier.live.<id>.",
    )
    database_role: str | None = Field(
        "mpr_notifier",
        validation_alias="DATABASE_ROLE",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="PostgreSQL role the notifier acts as (reads jobs, writes nothing); "
        "empty: the login user's.",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        validation_alias="CORS_ORIGINS",
        description="Comma-separated origins (scheme://host[:port]) whose web pages may read "
        "GET /api/events, e.g. the gateway's dashboard. Empty: none.",
    )
    mpr_api_keys: SecretStr = Field(
        SecretStr(""),
        validation_alias="MPR_API_KEYS",
        description="Comma-separated API keys, bare or as name:key. Empty: no auth (dev/test).",
    )
    webhook_secret: SecretStr = Field(
        SecretStr(DEV_WEBHOOK_SECRET),
        validation_alias="WEBHOOK_SECRET",
        description="Standard Webhooks signing secret: 'whsec_' + base64 of random bytes.",
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias="WEBHOOK_TIMEOUT_SECONDS", description="Per-attempt timeout."
    )
    webhook_max_attempts: int = Field(
        5, ge=1, le=20, validation_alias="WEBHOOK_MAX_ATTEMPTS", description="Attempts per event."
    )
    webhook_backoff_seconds: float = Field(
        1.0,
        ge=0,
        validation_alias="WEBHOOK_BACKOFF_SECONDS",
        description="First retry delay; doubles per attempt up to 30 s, with jitter.",
    )
    webhook_allow_private: bool = Field(
        False,
        validation_alias="WEBHOOK_ALLOW_PRIVATE",
        description="Allow webhook targets on loopback/private networks (off: SSRF protection).",
    )
    sse_buffer_size: int = Field(
        10_000,
        ge=1,
        validation_alias="SSE_BUFFER_SIZE",
        description="Events kept in memory for Last-Event-ID replay.",
    )
    sse_client_queue_size: int = Field(
        1_000,
        ge=1,
        validation_alias="SSE_CLIENT_QUEUE_SIZE",
        description="Events queued per SSE client before it is dropped with 'overflow'.",
    )
    sse_ping_seconds: float = Field(
        15.0,
        gt=0,
        validation_alias="SSE_PING_SECONDS",
        description="Keep-alive comment interval, so proxies keep idle streams open.",
    )
    sse_send_timeout_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias="SSE_SEND_TIMEOUT_SECONDS",
        description="A client whose socket accepts nothing for this long is disconnected.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        return tuple(_origin(item) for item in (p.strip() for p in value.split(",")) if item)

    @field_validator("webhook_secret")
    @classmethod
    def _whsec_format(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        try:
            key = base64.b64decode(raw.removeprefix("whsec_") + "==", validate=False)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("WEBHOOK_SECRET must be 'whsec_' followed by base64") from exc
        if not raw.startswith("whsec_") or len(key) < 16:
            raise ValueError("WEBHOOK_SECRET must be 'whsec_' + base64 of at least 16 bytes")
        return value

    @model_validator(mode="after")
    def _keys_and_production_secrets(self) -> Self:
        keys = self.api_keys  # a malformed MPR_API_KEYS fails here, not on the first request
        if self.mpr_env is Environment.PRODUCTION:
            if not keys:
                raise ValueError("production refuses to start without MPR_API_KEYS")
            if self.webhook_secret.get_secret_value() == DEV_WEBHOOK_SECRET:
                raise ValueError("production refuses the development WEBHOOK_SECRET")
        return self

    @property
    def api_keys(self) -> ApiKeys:
        """MPR_API_KEYS by client name (bare keys are named key1, key2, ...)."""
        return ApiKeys.parse(self.mpr_api_keys.get_secret_value())

    def secret_values(self) -> dict[str, str]:
        return {**super().secret_values(), "WEBHOOK_SECRET": self.webhook_secret.get_secret_value()}


def _origin(value: str) -> str:
    """``value`` if it is a web origin as browsers send it in ``Origin``."""
    parts = urlsplit(value)
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.scheme not in ("http", "https") or not parts.netloc or value != origin:
        raise ValueError(
            f"CORS_ORIGINS entry {value!r} is not an origin: use scheme://host[:port], "
            "without a path or trailing slash (e.g. http://127.0.0.1:8000)"
        )
    return value
