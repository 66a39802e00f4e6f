"""HttpWebhookSender: signatures, retries, refusals, pinned addresses (httpx.MockTransport)."""

from __future__ import annotations

import json

import httpx
import pytest
from standardwebhooks import Webhook

from mpr_notifier.adapters.webhooks import HttpWebhookSender, is_public
from mpr_notifier.application.webhooks import WebhookFailed
from mpr_notifier.settings import DEV_WEBHOOK_SECRET

BODY = json.dumps({"type": "JobCompleted", "job_id": "x"})


def sender_for(handler, *, resolver=None, allow_private=True, attempts=3) -> HttpWebhookSender:
    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpWebhookSender(
        client,
        DEV_WEBHOOK_SECRET,
        max_attempts=attempts,
        backoff_seconds=0,
        allow_private=allow_private,
        resolver=resolver or public,
    )


async def test_signed_post_verifies_with_standardwebhooks() -> None:
    received: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    await sender_for(handler).send("http://127.0.0.1:9/hook", "msg-1", BODY)
    [request] = received
    assert request.headers["webhook-id"] == "msg-1"
    payload = Webhook(DEV_WEBHOOK_SECRET).verify(request.content, dict(request.headers))
    assert payload == json.loads(BODY)


async def test_5xx_and_network_errors_are_retried_then_succeed() -> None:
    outcomes = iter(["error", 503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        outcome = next(outcomes)
        if outcome == "error":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(outcome)

    await sender_for(handler).send("http://127.0.0.1:9/hook", "msg-2", BODY)
    assert next(outcomes, None) is None  # all three attempts used


async def test_gives_up_after_max_attempts() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    with pytest.raises(WebhookFailed, match="after 3 attempts: HTTP 500"):
        await sender_for(handler).send("http://127.0.0.1:9/hook", "m", BODY)
    assert len(calls) == 3


async def test_4xx_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(410)

    with pytest.raises(WebhookFailed, match="rejected with HTTP 410"):
        await sender_for(handler).send("http://127.0.0.1:9/hook", "m", BODY)
    assert len(calls) == 1


async def test_redirects_are_not_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://169.254.169.254/"})

    with pytest.raises(WebhookFailed, match="HTTP 302"):
        await sender_for(handler).send("http://127.0.0.1:9/hook", "m", BODY)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///nohost"])
async def test_only_http_urls(url: str) -> None:
    with pytest.raises(WebhookFailed, match="only http"):
        await sender_for(lambda r: httpx.Response(200)).send(url, "m", BODY)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.1.2.3", "192.168.0.5", "169.254.169.254", "::1", "fd00::1"]
)
async def test_private_targets_are_refused_unless_allowed(address: str) -> None:
    calls = []

    async def resolver(host: str, port: int) -> list[str]:
        return [address]

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    guarded = sender_for(handler, resolver=resolver, allow_private=False)
    with pytest.raises(WebhookFailed, match="non-public address"):
        await guarded.send("https://hooks.example.com/x", "m", BODY)
    assert calls == []
    allowed = sender_for(handler, resolver=resolver, allow_private=True)
    await allowed.send("https://hooks.example.com/x", "m", BODY)
    assert len(calls) == 1


async def test_public_target_passes_the_guard() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    await sender_for(handler, allow_private=False).send("https://hooks.example.com/x", "m", BODY)
    assert len(calls) == 1


def test_is_public() -> None:
    assert is_public("93.184.216.34")
    assert not is_public("::ffff:127.0.0.1")
    assert not is_public("100.64.0.1")
    assert not is_public("224.0.0.1")


class Rebinding:
    """A DNS answer that changes between lookups (TTL 0): public first, then private."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


@pytest.mark.parametrize(
    ("url", "host_header", "sni"),
    [
        ("https://hooks.example.com/x", "hooks.example.com", "hooks.example.com"),
        ("http://hooks.example.com:8080/x", "hooks.example.com:8080", None),
    ],
)
async def test_the_request_goes_to_the_checked_address(
    url: str, host_header: str, sni: str | None
) -> None:
    received: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    dns = Rebinding(["93.184.216.34"], ["127.0.0.1"])
    guarded = sender_for(handler, resolver=dns, allow_private=False)
    await guarded.send(url, "m", BODY)
    [request] = received
    assert request.url.host == "93.184.216.34"  # what was checked, not a second lookup's answer
    assert request.url.path == "/x"
    assert request.headers["host"] == host_header
    assert request.extensions.get("sni_hostname") == sni
    assert len(dns.lookups) == 1


async def test_each_attempt_checks_again_and_refuses_a_rebound_name() -> None:
    received: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(503)

    dns = Rebinding(["93.184.216.34"], ["10.0.0.7"])
    guarded = sender_for(handler, resolver=dns, allow_private=False)
    with pytest.raises(WebhookFailed, match=r"non-public address \['10.0.0.7'\]"):
        await guarded.send("https://hooks.example.com/x", "m", BODY)
    assert [r.url.host for r in received] == ["93.184.216.34"]


async def test_an_address_that_refuses_the_connection_falls_back_to_the_next_checked_one() -> None:
    ipv6, ipv4 = "2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"
    tried: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        if request.url.host == ipv6:
            raise httpx.ConnectError("network unreachable", request=request)
        return httpx.Response(200)

    guarded = sender_for(handler, resolver=Rebinding([ipv6, ipv4]), allow_private=False)
    await guarded.send("https://hooks.example.com/x", "m", BODY)
    assert tried == [ipv6, ipv4]
