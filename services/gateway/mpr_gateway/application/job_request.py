"""A new job as REST and GraphQL clients ask for it; its JobSpec is what travels on."""

from __future__ import annotations

from typing import Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from mpr_gateway.domain.errors import InvalidRequest
from mpr_gateway.domain.executors import Executor
from mpr_gateway.domain.planning import job_spec
from mpr_shared.contracts import JobKind, JobSpec, TrimMode

SPEC_FIELDS = set(JobSpec.model_fields)
MAX_WEBHOOK_URL = 2048


class JobRequest(BaseModel):
    """A new job: the source (source_key or asset_id) and what to make from it."""

    model_config = ConfigDict(extra="forbid")

    source_key: str | None = Field(
        None, description="S3 key in the input bucket (or give asset_id).", examples=["a.mp4"]
    )
    asset_id: UUID | None = Field(None, description="A registered asset (or give source_key).")
    kind: JobKind = Field(description="transcode | trim | audio | thumbnail | hls")
    preset: str | None = Field(
        None, max_length=64, description="Preset name (see the presets); kind's default if unset."
    )
    output_key: str | None = Field(
        None, description="Output key; default <source stem>/<job id>/<preset or kind><ext>."
    )
    start: float | None = Field(None, ge=0, allow_inf_nan=False, description="Trim start (s).")
    end: float | None = Field(None, gt=0, allow_inf_nan=False, description="Trim end (s).")
    mode: TrimMode | None = Field(None, description="Trim: copy (keyframes) or accurate.")
    at: float | None = Field(None, ge=0, allow_inf_nan=False, description="Thumbnail time (s).")
    count: int | None = Field(None, ge=1, le=100, description="Thumbnail sprite frame count.")
    priority: int = Field(0, ge=0, le=9, description="0 (lowest) to 9 (highest).")
    webhook_url: HttpUrl | None = Field(
        None, description="Called by the notifier when the job finishes."
    )
    executor: Executor | None = Field(
        None,
        description="rabbitmq | stepfunctions; the deployment's EXECUTOR if unset. Only "
        "those in EXECUTORS_ALLOWED are accepted (422 names them).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.source_key is None and self.asset_id is None:
            raise ValueError("give the source as 'source_key' (an S3 key) or 'asset_id'")
        if self.webhook_url is not None and len(str(self.webhook_url)) > MAX_WEBHOOK_URL:
            raise ValueError(f"webhook_url is longer than {MAX_WEBHOOK_URL} characters")
        return self

    @property
    def webhook(self) -> str | None:
        return str(self.webhook_url) if self.webhook_url else None

    def spec(self) -> JobSpec:
        """What to make, by the one set of rules (mpr_shared.jobspec); InvalidRequest if not."""
        return job_spec(self.model_dump(include=SPEC_FIELDS, exclude_none=True))


def parse_job_request(data: dict[str, Any]) -> JobRequest:
    """A JobRequest from plain data (GraphQL input); InvalidRequest lists every bad field."""
    try:
        return JobRequest.model_validate(data)
    except ValidationError as exc:
        problems = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "input",
                "message": err["msg"].removeprefix("Value error, "),
            }
            for err in exc.errors(include_url=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidRequest(f"invalid job: {summary}", details=problems) from None
