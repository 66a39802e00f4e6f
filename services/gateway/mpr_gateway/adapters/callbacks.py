"""Lambda executor callbacks: Standard Webhooks signature check, then the event it carries."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from pydantic import ValidationError
from standardwebhooks import Webhook

from mpr_gateway.domain.errors import InvalidRequest, Unauthorized, Unavailable
from mpr_shared.contracts import (
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobStarted,
)

CALLBACK_EVENTS: dict[str, type[Event]] = {
    e.__name__: e for e in (JobStarted, JobProgress, JobCompleted, JobFailed, JobCancelled)
}


class CallbackVerifier:
    """Verifies ``webhook-id``/``webhook-timestamp``/``webhook-signature`` with the secret."""

    def __init__(self, secret: str | None) -> None:
        self._webhook = Webhook(secret) if secret else None

    def verify(self, job_id: UUID, envelope, raw: bytes, headers: Mapping[str, str]) -> Event:
        if self._webhook is None:
            raise Unavailable(
                "callbacks are disabled on this gateway: set MPR_CALLBACK_SECRET (whsec_…)",
                retry_after=60,
            )
        try:
            self._webhook.verify(raw, dict(headers), json_parse=False)
        except Exception:
            # Missing headers, a stale timestamp (> 5 min) or a wrong signature all land here.
            raise Unauthorized(
                "callback signature is missing, expired or wrong: sign the exact body with "
                "MPR_CALLBACK_SECRET using Standard Webhooks (webhook-id, webhook-timestamp, "
                "webhook-signature headers)"
            ) from None
        try:
            event = CALLBACK_EVENTS[envelope.type].model_validate(envelope.data)
        except ValidationError as exc:
            problems = [
                f"data.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
            raise InvalidRequest(
                f"callback data is not a valid {envelope.type}: " + "; ".join(problems),
                details={"problems": problems},
            ) from None
        if event.job_id != job_id:  # type: ignore[attr-defined]
            raise InvalidRequest(
                f"callback for job {job_id} carries an event of job {event.job_id}; "  # type: ignore[attr-defined]
                "post it to that job's callback URL"
            )
        return event
