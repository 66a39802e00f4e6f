"""Gateway settings: every environment variable the gateway reads, in one place."""

from __future__ import annotations

from functools import cached_property
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from mpr_gateway.domain.executors import Executor, ExecutorPolicy
from mpr_shared.auth import ApiKeys
from mpr_shared.settings import CommonSettings, Environment


class GatewaySettings(CommonSettings):
    """REST/GraphQL gateway settings; production refuses to start without API keys."""

    gateway_host: str = Field(
        "127.0.0.1", validation_alias="GATEWAY_HOST", description="Interface uvicorn binds."
    )
    gateway_port: int = Field(8000, validation_alias="GATEWAY_PORT", description="HTTP port.")
    access_log: bool = Field(
        True,
        validation_alias="ACCESS_LOG",
        description="Log every HTTP request (uvicorn's access log); false under high load, "
        "where /metrics counts requests by route and status.",
    )
    api_keys: SecretStr = Field(
        SecretStr(""),
        validation_alias="MPR_API_KEYS",
        description="Comma-separated 'name:key' pairs or bare keys accepted as API keys.",
    )
    callback_secret: SecretStr | None = Field(
        None,
        validation_alias="MPR_CALLBACK_SECRET",
        description="Standard Webhooks secret (whsec_…) the Lambda executor signs callbacks with.",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        validation_alias="MAX_BODY_BYTES",
        description="Largest request body accepted; larger ones get 413.",
    )
    scan_timeout_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias="SCAN_TIMEOUT_SECONDS",
        description="How long POST /api/assets/scan waits for the catalog's reply.",
    )
    presign_expires_seconds: int = Field(
        3600,
        ge=60,
        le=7 * 24 * 3600,  # SigV4 presigned URLs cannot outlive 7 days.
        validation_alias="PRESIGN_EXPIRES_SECONDS",
        description="Lifetime of the download URLs in job outputs.",
    )
    graphql_max_depth: int = Field(
        10, ge=2, validation_alias="GRAPHQL_MAX_DEPTH", description="Deepest GraphQL selection."
    )
    graphql_max_complexity: int = Field(
        5000,
        ge=10,
        validation_alias="GRAPHQL_MAX_COMPLEXITY",
        description="Largest estimated number of resolved fields (list fields count x limit).",
    )
    outbox_poll_seconds: float = Field(
        1.0,
        gt=0,
        validation_alias="OUTBOX_POLL_SECONDS",
        description="How often the outbox relay retries when nothing woke it.",
    )
    db_pool_size: int = Field(
        30,
        ge=1,
        validation_alias="GATEWAY_DB_POOL_SIZE",
        description="PostgreSQL connections (no overflow: more concurrent requests wait for "
        "one); size it to the concurrent requests and the server's max_connections.",
    )
    broker_startup_wait_seconds: float = Field(
        10.0,
        ge=0,
        validation_alias="BROKER_STARTUP_WAIT_SECONDS",
        description="How long start-up waits for RabbitMQ before serving without it "
        "(jobs then wait in the outbox; the connection keeps being retried).",
    )
    scan_rate_per_minute: int = Field(
        6,
        ge=1,
        validation_alias="SCAN_RATE_PER_MINUTE",
        description="Bucket scans each API client may ask for per minute, per gateway replica "
        "(bursts up to the same number); more get 429 with Retry-After.",
    )
    database_role: str | None = Field(
        "mpr_gateway",
        validation_alias="DATABASE_ROLE",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="PostgreSQL role the gateway acts as (writes jobs and gateway_outbox, "
        "reads assets); empty: the login user's.",
    )
    event_prefetch: int = Field(
        32,
        ge=1,
        validation_alias="GATEWAY_PREFETCH",
        description="Unacked job events per consumer (https://www.rabbitmq.com/docs/consumer-prefetch).",
    )
    # Uploads (POST /api/uploads): presigned PUT and multipart URLs into S3_BUCKET_IN.
    max_upload_bytes: int = Field(
        50 * 1024**3,
        ge=1,
        le=5 * 1024**4,  # S3's largest object: 5 TiB
        validation_alias="MAX_UPLOAD_BYTES",
        description="Largest file POST /api/uploads accepts; larger ones get 413.",
    )
    upload_multipart_threshold_bytes: int = Field(
        64 * 1024**2,
        ge=0,
        le=5 * 1024**3,  # S3's largest single PUT: 5 GiB
        validation_alias="UPLOAD_MULTIPART_THRESHOLD_BYTES",
        description="Files larger than this are uploaded in parts; smaller ones in one PUT.",
    )
    upload_part_size_bytes: int = Field(
        16 * 1024**2,
        ge=5 * 1024**2,  # S3's smallest part (all but the last)
        le=5 * 1024**3,  # and its largest
        validation_alias="UPLOAD_PART_SIZE_BYTES",
        description="Smallest part of a multipart upload (S3 allows 5 MiB; 8 MiB or more "
        "suits browsers and CLIs); "
        "it grows with the file so no upload needs more than 10,000 parts.",
    )
    upload_ttl_seconds: int = Field(
        24 * 3600,
        ge=60,
        le=7 * 24 * 3600,  # the presigned URLs live as long and cannot outlive 7 days
        validation_alias="UPLOAD_TTL_SECONDS",
        description="How long an upload may stay incomplete; then it is aborted and expired.",
    )
    upload_sweep_seconds: float = Field(
        300.0,
        ge=0,
        validation_alias="UPLOAD_SWEEP_SECONDS",
        description="How often the gateway aborts uploads older than UPLOAD_TTL_SECONDS "
        "(0: never; servers without lifecycle rules, such as SeaweedFS, rely on it).",
    )
    upload_register_timeout_seconds: float = Field(
        5.0,
        ge=0,
        validation_alias="UPLOAD_REGISTER_TIMEOUT_SECONDS",
        description="How long completing an upload waits for the catalog to register the "
        "asset; past it the command waits in the outbox and asset_id is null.",
    )
    upload_cors_origins: str = Field(
        "*",
        validation_alias="UPLOAD_CORS_ORIGINS",
        description="Comma-separated origins allowed to PUT to the input bucket from a "
        "browser (bucket CORS, set at start-up where the server supports it); empty: leave "
        "the buckets' CORS alone.",
    )

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.upload_cors_origins.split(",") if o.strip()]

    executor: Executor = Field(
        Executor.RABBITMQ,
        validation_alias="EXECUTOR",
        description="Where jobs run by default: rabbitmq (transcoder replicas) or "
        "stepfunctions (AWS Lambda through Step Functions, deploy/aws/).",
    )
    executors_allowed: str = Field(
        "",
        validation_alias="EXECUTORS_ALLOWED",
        description="Comma-separated executors a job may ask for with 'executor' "
        "(EXECUTOR is always allowed); empty: only EXECUTOR.",
    )
    state_machine_arn: str | None = Field(
        None,
        validation_alias="STATE_MACHINE_ARN",
        pattern=r"^arn:[\w-]+:states:[\w-]+:\d{12}:stateMachine:[\w-]{1,80}$",
        description="The transcoder state machine (deploy/aws output StateMachineArn); "
        "needed when stepfunctions is allowed.",
    )
    public_url: str | None = Field(
        None,
        validation_alias="PUBLIC_URL",
        pattern=r"^https?://[^/\s]+(/[^\s]*)?$",
        description="The gateway's base URL as the Lambda reaches it; callbacks go to "
        "PUBLIC_URL/api/jobs/<id>/callback. Needed when stepfunctions is allowed.",
    )
    stepfunctions_endpoint_url: str | None = Field(
        None,
        validation_alias="STEPFUNCTIONS_ENDPOINT_URL",
        description="Step Functions API endpoint; empty means AWS's in AWS_REGION (set it "
        "for a local emulator).",
    )
    lambda_max_source_seconds: float = Field(
        300.0,
        gt=0,
        le=900,
        validation_alias="LAMBDA_MAX_SOURCE_SECONDS",
        description="Longest source the stepfunctions executor takes; longer or unprobed "
        "sources are refused (422). Measure it: deploy/aws/README.md, 'Long jobs'.",
    )

    @field_validator("state_machine_arn", "public_url", "stepfunctions_endpoint_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @cached_property
    def executor_policy(self) -> ExecutorPolicy:
        """The default executor, the allowed ones and the Lambda's source budget."""
        names = [n.strip() for n in self.executors_allowed.split(",") if n.strip()]
        try:
            allowed = [Executor(n) for n in names]
        except ValueError:
            choices = ", ".join(e.value for e in Executor)
            raise ValueError(
                f"EXECUTORS_ALLOWED={self.executors_allowed!r}: use {choices}"
            ) from None
        return ExecutorPolicy.of(self.executor, allowed, self.lambda_max_source_seconds)

    worker_timeout_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias="WORKER_TIMEOUT_SECONDS",
        description="A transcoder replica without a heartbeat for this long is no longer listed "
        "(GET /api/workers) and its row is deleted; keep it above WORKER_HEARTBEAT_SECONDS.",
    )
    rabbitmq_management_url: SecretStr | None = Field(
        None,
        validation_alias="RABBITMQ_MANAGEMENT_URL",
        description="RabbitMQ management API (http://user:password@host:15672) for the job "
        "queue's unacked count in GET /api/queue; unset: that count is null.",
    )
    public_events_url: str = Field(
        "http://127.0.0.1:8001",
        validation_alias="PUBLIC_EVENTS_URL",
        description="The notifier's base URL as browsers and the CLI reach it (SSE); '' means "
        "the gateway's own origin (behind nginx or an ingress). Served by GET /api/config.",
    )

    @cached_property
    def api_key_map(self) -> dict[str, str]:
        """Configured keys by client name; bare keys are named key1, key2, ..."""
        return ApiKeys.parse(self.api_keys.get_secret_value()).by_name()

    @model_validator(mode="after")
    def _keys_required_in_production(self) -> Self:
        keys = self.api_key_map  # parses, so a malformed value fails at start-up
        if Executor.STEPFUNCTIONS in self.executor_policy.allowed:
            missing = [
                name
                for name, value in (
                    ("STATE_MACHINE_ARN", self.state_machine_arn),
                    ("PUBLIC_URL", self.public_url),
                    ("MPR_CALLBACK_SECRET", self.callback_secret),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    "the stepfunctions executor needs "
                    + ", ".join(missing)
                    + " (deploy/aws/README.md)"
                )
        if self.mpr_env is Environment.PRODUCTION and not keys:
            raise ValueError("production refuses to start without MPR_API_KEYS (name:key,…)")
        if self.callback_secret is not None:
            from standardwebhooks import Webhook

            try:
                Webhook(self.callback_secret.get_secret_value())
            except Exception as exc:
                raise ValueError(
                    "MPR_CALLBACK_SECRET must be a Standard Webhooks secret: 'whsec_' followed "
                    f"by base64 ({exc})"
                ) from None
        return self

    def secret_values(self) -> dict[str, str]:
        values = super().secret_values()
        values.update({f"MPR_API_KEYS[{name}]": key for name, key in self.api_key_map.items()})
        if self.callback_secret is not None:
            values["MPR_CALLBACK_SECRET"] = self.callback_secret.get_secret_value()
        if self.rabbitmq_management_url is not None:
            url = self.rabbitmq_management_url.get_secret_value()
            values["RABBITMQ_MANAGEMENT_URL"] = urlsplit(url).password or ""
        return values
