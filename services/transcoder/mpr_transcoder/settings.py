"""Transcoder settings: every environment variable the service reads, in one place."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator

from mpr_shared.settings import CommonSettings
from mpr_transcoder.domain.ffmpeg_args import InputMode


class TranscoderSettings(CommonSettings):
    """Settings of one transcoder replica (and of the Lambda executor)."""

    database_role: str | None = Field(
        "mpr_transcoder",
        validation_alias="DATABASE_ROLE",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="PostgreSQL role the transcoder acts as (reads the jobs table only); "
        "empty: the login user's.",
    )

    work_dir: Path = Field(
        Path("var/transcoder"),
        validation_alias="TRANSCODER_WORK_DIR",
        description="Scratch space; each replica works in its own sub-directory.",
    )
    shutdown_grace_seconds: float = Field(
        30.0,
        ge=0,
        validation_alias="SHUTDOWN_GRACE_SECONDS",
        description="On SIGTERM, how long the running job may finish before it is handed back.",
    )
    max_deliveries: int = Field(
        5,
        ge=1,
        validation_alias="MAX_DELIVERIES",
        description="Deliveries of one job (crashes and transient failures) before the DLQ.",
    )
    retry_backoff_seconds: float = Field(
        2.0,
        ge=0,
        validation_alias="RETRY_BACKOFF_SECONDS",
        description="Wait before redelivering a transiently failed job (doubles each time).",
    )
    max_job_seconds: float = Field(
        5 * 3600.0,
        gt=0,
        validation_alias="MAX_JOB_SECONDS",
        description="Wall time after which a job is failed; keep it below the broker timeout.",
    )
    broker_consumer_timeout_seconds: float = Field(
        6 * 3600.0,
        gt=0,
        validation_alias="RABBITMQ_CONSUMER_TIMEOUT_SECONDS",
        # The node-wide consumer_timeout (scripts/infra.sh, compose, k8s set 6 h). A delivery
        # held longer is redelivered elsewhere while still running here.
        # https://www.rabbitmq.com/docs/consumers#acknowledgement-timeout
        description="RabbitMQ's consumer_timeout as configured on the broker (checked only).",
    )
    max_input_bytes: int = Field(
        20 * 1024**3, gt=0, validation_alias="MAX_INPUT_BYTES", description="Largest source."
    )
    max_duration_seconds: float = Field(
        6 * 3600.0,
        gt=0,
        validation_alias="MAX_DURATION_SECONDS",
        description="Longest source accepted.",
    )
    max_output_height: int = Field(
        2160, ge=16, validation_alias="MAX_OUTPUT_HEIGHT", description="Tallest output."
    )
    ffmpeg_threads: int = Field(
        0, ge=0, validation_alias="FFMPEG_THREADS", description="FFmpeg -threads; 0 = auto."
    )
    ffmpeg_binary: str = Field("ffmpeg", validation_alias="FFMPEG_BINARY")
    ffprobe_binary: str = Field("ffprobe", validation_alias="FFPROBE_BINARY")
    input_mode: InputMode = Field(
        InputMode.DOWNLOAD,
        validation_alias="INPUT_MODE",
        description="download: copy the source to local disk first; url: FFmpeg reads a "
        "presigned URL (see README: download is the default, measured faster here).",
    )
    duration_tolerance_seconds: float = Field(
        0.5,
        ge=0,
        validation_alias="DURATION_TOLERANCE_SECONDS",
        description="How far an output's duration may differ from the expected one.",
    )
    multipart_upload_ttl_seconds: float = Field(
        24 * 3600.0,
        gt=0,
        validation_alias="MULTIPART_UPLOAD_TTL_SECONDS",
        description="Incomplete multipart uploads in the output bucket older than this are "
        "aborted; keep it above the longest upload.",
    )
    multipart_sweep_interval_seconds: float = Field(
        3600.0,
        ge=0,
        validation_alias="MULTIPART_SWEEP_INTERVAL_SECONDS",
        description="How often a replica sweeps old incomplete uploads; 0: at start-up only.",
    )
    idle_exit_seconds: float = Field(
        0.0,
        ge=0,
        validation_alias="TRANSCODER_IDLE_EXIT_SECONDS",
        description="Exit (status 0) after this long without a job, so that a KEDA ScaledJob's "
        "pod completes its Job; 0: run until stopped.",
    )
    health_host: str = Field("127.0.0.1", validation_alias="HEALTH_HOST")
    health_port: int | None = Field(
        None, validation_alias="HEALTH_PORT", description="Serve health/ready/metrics when set."
    )
    callback_secret: SecretStr = Field(
        SecretStr(""),
        validation_alias="MPR_CALLBACK_SECRET",
        description="standardwebhooks secret (whsec_...) signing Lambda callbacks.",
    )
    lambda_work_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "mpr-transcoder",
        validation_alias="LAMBDA_WORK_DIR",
        description="Scratch space of the Lambda executor (Lambda can only write /tmp).",
    )
    callback_timeout_seconds: float = Field(10.0, gt=0, validation_alias="CALLBACK_TIMEOUT_SECONDS")
    worker_heartbeat_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias="WORKER_HEARTBEAT_SECONDS",
        description="How often a replica announces itself and its current job (WorkerHeartbeat); "
        "keep it well below the gateway's WORKER_TIMEOUT_SECONDS.",
    )
    instance_id: str | None = Field(
        None,
        validation_alias="TRANSCODER_INSTANCE_ID",
        description="Replica id; default hostname-pid-random.",
    )

    @model_validator(mode="after")
    def _job_fits_consumer_timeout(self) -> Self:
        budget = self.max_job_seconds + self.shutdown_grace_seconds
        if budget >= self.broker_consumer_timeout_seconds:
            raise ValueError(
                f"MAX_JOB_SECONDS + SHUTDOWN_GRACE_SECONDS ({budget:.0f}s) must stay below the "
                f"broker's consumer timeout ({self.broker_consumer_timeout_seconds:.0f}s), or a "
                "long job is redelivered to another replica while it still runs"
            )
        return self

    def secret_values(self) -> dict[str, str]:
        values = super().secret_values()
        # The callback secret matters only where the Lambda executor runs.
        if self.callback_secret.get_secret_value():
            values["MPR_CALLBACK_SECRET"] = self.callback_secret.get_secret_value()
        return values
