"""The EventPublisher of the Lambda executor: signed POSTs to the gateway's job callback.

Body ``{"type": "<event class>", "data": <event JSON>}``, signed per Standard Webhooks
(headers webhook-id, webhook-timestamp, webhook-signature) with MPR_CALLBACK_SECRET.
https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from mpr_shared.contracts import Event, JobProgress, JobStarted

log = logging.getLogger(__name__)


class CallbackFailed(Exception):
    """The gateway did not accept a callback."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return code >= 500 or code in (408, 429)
    return isinstance(exc, httpx.TransportError)


def signed_request(secret: str, event: Event) -> tuple[str, dict[str, str]]:
    """The JSON body and Standard Webhooks headers for ``event``."""
    body = json.dumps(
        {"type": type(event).__name__, "data": event.model_dump(mode="json")},
        separators=(",", ":"),
    )
    msg_id = str(event.id)  # the same on every retry, so the receiver can dedupe
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }
    return body, headers


class CallbackPublisher:
    """Posts each job event to ``url``; progress is best effort, results must land."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, secret: str, *, attempts: int = 5
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("callback_url must be an http(s) URL")
        if not secret:
            raise ValueError("MPR_CALLBACK_SECRET is not set; callbacks must be signed")
        self.client = client
        self.url = url
        self.secret = secret
        self.attempts = attempts

    async def publish(self, event: Event) -> None:
        best_effort = isinstance(event, JobStarted | JobProgress)
        try:
            await self._post(event, attempts=2 if best_effort else self.attempts)
        except (httpx.HTTPError, CallbackFailed) as exc:
            if not best_effort:
                raise CallbackFailed(f"callback {type(event).__name__} failed: {exc}") from exc
            log.warning("callback %s failed (ignored): %s", type(event).__name__, exc)

    async def _post(self, event: Event, attempts: int) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential_jitter(multiplier=0.5, max=10, jitter=0.5),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                body, headers = signed_request(self.secret, event)
                response = await self.client.post(self.url, content=body, headers=headers)
                response.raise_for_status()
