"""Settings primitives every service builds its own Settings from."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Self, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that are fine on a laptop and never acceptable in production.
PLACEHOLDER_SECRETS = frozenset({"", "minioadmin", "guest", "changeme", "change-me", "secret"})
DEFAULT_SQLITE_PATH = Path("var/mpr.db")
# The local S3 server's keys (scripts/infra.sh, compose), used only in development and only
# against an S3_ENDPOINT_URL when no keys are configured.
DEVELOPMENT_S3_KEYS = ("minioadmin", "minioadmin")


class QueueType(StrEnum):
    """How MPR's durable queues are declared (topology.py): one node, or replicated."""

    CLASSIC = "classic"
    QUORUM = "quorum"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def normalize_database_url(url: str) -> str:
    """Map plain driver URLs to their asyncio drivers (postgresql:// → postgresql+asyncpg://)."""
    for plain, async_ in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(plain):
            return async_ + url[len(plain) :]
    return url


class CommonSettings(BaseSettings):
    """Settings every service reads. Names follow the storage spec."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # Errors must never echo inputs: they hold passwords (AMQP_URL, DATABASE_URL).
        hide_input_in_errors=True,
    )

    mpr_env: Environment = Field(Environment.DEVELOPMENT, validation_alias="MPR_ENV")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")

    s3_endpoint_url: str | None = Field(
        "http://127.0.0.1:9000",
        validation_alias="S3_ENDPOINT_URL",
        description="S3 API endpoint; empty means real AWS S3.",
    )
    s3_public_endpoint_url: str | None = Field(
        None,
        validation_alias="S3_PUBLIC_ENDPOINT_URL",
        description="Endpoint for presigned URLs given to clients (default: S3_ENDPOINT_URL).",
    )
    s3_bucket_in: str = Field("mpr-media-in", validation_alias="S3_BUCKET_IN")
    s3_bucket_out: str = Field("mpr-media-out", validation_alias="S3_BUCKET_OUT")
    aws_region: str = Field("us-east-1", validation_alias="AWS_REGION")
    aws_access_key_id: str | None = Field(
        None,
        validation_alias="AWS_ACCESS_KEY_ID",
        description="Static key id, used only together with AWS_SECRET_ACCESS_KEY; neither "
        "set means boto3's default credential chain (web identity/IRSA/Pod Identity, instance "
        "profile, Lambda's role). In development against S3_ENDPOINT_URL: minioadmin.",
    )
    aws_secret_access_key: SecretStr | None = Field(
        None, validation_alias="AWS_SECRET_ACCESS_KEY", description="Static secret key."
    )
    aws_session_token: SecretStr | None = Field(
        None,
        validation_alias="AWS_SESSION_TOKEN",
        description="Session token of temporary static keys (Lambda's role, assumed roles).",
    )
    s3_events_exchange: str = Field("mpr.s3-events", validation_alias="S3_EVENTS_EXCHANGE")
    s3_events_routing_key: str | None = Field(
        None,
        validation_alias="S3_EVENTS_ROUTING_KEY",
        description="Routing key of bucket notifications; defaults to S3_BUCKET_IN.",
    )

    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        validation_alias="AMQP_URL",
        description="One node, or a cluster's nodes as amqp://user:pass@host1:5672,host2:5672/ "
        "(each connection attempt takes the next node).",
    )
    queue_type: QueueType = Field(
        QueueType.CLASSIC,
        validation_alias="QUEUE_TYPE",
        description="classic: one node, 10 job priorities; quorum: replicated on a cluster, "
        "delivery limit, at-least-once dead-lettering, 2 priority levels on RabbitMQ 4.x. "
        "Fixed when a queue is first declared (ARCHITECTURE.md, 'Queues on a cluster').",
    )
    database_url: SecretStr = Field(
        SecretStr(f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"), validation_alias="DATABASE_URL"
    )
    database_role: str | None = Field(
        None,
        validation_alias="DATABASE_ROLE",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="PostgreSQL role the service acts as (its write grants); empty: the "
        "login user's. Each service's settings give its own role as the default.",
    )

    @property
    def events_routing_key(self) -> str:
        return self.s3_events_routing_key or self.s3_bucket_in

    @property
    def async_database_url(self) -> str:
        return normalize_database_url(self.database_url.get_secret_value())

    @field_validator(
        "s3_endpoint_url",
        "s3_public_endpoint_url",
        "s3_events_routing_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "database_role",
        mode="before",
    )
    @classmethod
    def _empty_means_unset(cls, value: str | SecretStr | None) -> str | SecretStr | None:
        if isinstance(value, SecretStr):
            return value if value.get_secret_value() else None
        return value or None

    @model_validator(mode="after")
    def _static_keys_in_pairs(self) -> Self:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError(
                "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (static keys) or neither "
                "(boto3's default credential chain: web identity, instance profile, Lambda's role)"
            )
        return self

    def aws_credentials(self) -> dict[str, str]:
        """boto3 client keywords: the static keys (and session token) when both keys are set,
        the local server's in development, else nothing (boto3's default credential chain)."""
        if self.aws_access_key_id is not None and self.aws_secret_access_key is not None:
            keys = {
                "aws_access_key_id": self.aws_access_key_id,
                "aws_secret_access_key": self.aws_secret_access_key.get_secret_value(),
            }
            if self.aws_session_token is not None:
                keys["aws_session_token"] = self.aws_session_token.get_secret_value()
            return keys
        if self.mpr_env is Environment.DEVELOPMENT and self.s3_endpoint_url:
            key_id, secret = DEVELOPMENT_S3_KEYS
            return {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
        return {}

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Self:
        if self.mpr_env is not Environment.PRODUCTION:
            return self
        problems = [name for name, value in self.secret_values().items() if _is_placeholder(value)]
        if problems:
            raise ValueError(
                "production settings refuse placeholder secrets; set real values for: "
                + ", ".join(sorted(problems))
            )
        return self

    def secret_values(self) -> dict[str, str]:
        """Secrets checked in production; services extend this with their own."""
        secrets = {"AMQP_URL": _url_password(self.amqp_url.get_secret_value())}
        if self.aws_access_key_id and self.aws_secret_access_key:  # else boto3's chain
            secrets["AWS_ACCESS_KEY_ID"] = self.aws_access_key_id
            secrets["AWS_SECRET_ACCESS_KEY"] = self.aws_secret_access_key.get_secret_value()
        return secrets


def _url_password(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).password or ""


def _is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDER_SECRETS


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(settings_type: type[SettingsT], service: str) -> SettingsT:
    """The settings from the environment; invalid ones end the process with what is wrong.

    Without the input values: pydantic would otherwise echo secrets such as AMQP_URL.
    """
    try:
        return settings_type()
    except ValidationError as exc:
        problems = (
            f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise SystemExit(f"invalid {service} settings:\n" + "\n".join(problems)) from None


@lru_cache
def common_settings() -> CommonSettings:
    return CommonSettings()
