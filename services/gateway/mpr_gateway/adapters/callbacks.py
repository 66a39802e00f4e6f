"""Lambda executor callbacks: Standard Webhooks signature check, then the event it carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from standardwebhooks import Webhook

from mpr_gateway.domain.errors import InvalidRequest, Unauthorized, Unavailable
from mpr_gateway.domain.jobs import JOB_EVENT_TYPES, JobEvent

CALLBACK_EVENTS: dict[str, type[JobEvent]] = {e.__name__: e for e in JOB_EVENT_TYPES}


class CallbackVerifier:
    """Verifies ``webhook-id``/``webhook-timestamp``/``webhook-signature`` with the secret."""

    def __init__(self, secret: str | None) -> None:
        self._webhook = Webhook(secret) if secret else None

    def verify(self, raw: bytes, headers: Mapping[str, str]) -> None:
        """Return when ``raw`` is signed with the secret; Unauthorized otherwise."""
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


def callback_event(job_id: UUID, event_type: str, data: dict[str, Any]) -> JobEvent:
    """The event a verified callback carries, for the job its URL names."""
    try:
        event = CALLBACK_EVENTS[event_type].model_validate(data)
    except ValidationError as exc:
        problems = [
            f"data.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        raise InvalidRequest(
            f"callback data is not a valid {event_type}: " + "; ".join(problems),
            details={"problems": problems},
        ) from None
    if event.job_id != job_id:
        raise InvalidRequest(
            f"callback for job {job_id} carries an event of job {event.job_id}; "
            "post it to that job's callback URL"
        )
    return event
