"""The gateway's REST API over httpx: JSON in, JSON out, every failure a CliError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from mpr_cli import __version__
from mpr_cli.config import DEFAULT_EVENTS_URL, Config
from mpr_cli.errors import ApiError, CliError

USER_AGENT = f"mpr-cli/{__version__}"
# Connecting fails fast (a wrong MPR_URL); a scan or a large page may take a while to answer.
TIMEOUT = httpx.Timeout(60.0, connect=5.0)
AUTH_HINT = "set MPR_API_KEY or run `mpr config set api-key`"


@contextmanager
def reaching(what: str, url: str) -> Iterator[None]:
    """Network failures as one line that names the server and the setting to check."""
    try:
        yield
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise CliError(f"cannot reach {what} at {url}: {reason}") from None


def error_of(response: httpx.Response) -> CliError:
    """The API's own error document, read without trusting its shape."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message = str(error.get("code", "error")), str(error.get("message", ""))
    else:
        code, message = "error", response.reason_phrase or "request failed"
    if response.status_code == 401:
        return CliError(f"the API key was refused: {message}; {AUTH_HINT}", body)
    return ApiError(response.status_code, code, message, body)


class Api:
    """One gateway, one key; also the HTTP client for presigned S3 URLs and the SSE stream."""

    def __init__(self, config: Config, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self.key = config.require_key()
        self.http = httpx.Client(
            base_url=config.url,
            headers={"X-API-Key": self.key, "User-Agent": USER_AGENT},
            timeout=TIMEOUT,
            transport=transport,
        )
        # Presigned URLs carry their own credentials: the API key must never travel to S3.
        self.plain = httpx.Client(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(120.0, connect=10.0),
            transport=transport,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )

    def close(self) -> None:
        self.http.close()
        self.plain.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The response's JSON (None for 204); CliError for 4xx/5xx or no answer."""
        with reaching("the MPR gateway", self.config.url):
            response = self.http.request(method, path, **kwargs)
        if response.is_error:
            raise error_of(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"{method} {path} answered something other than JSON; is "
                f"{self.config.url} an MPR gateway? (MPR_URL)"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=query)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def events_url(self) -> str:
        """The notifier's base URL: MPR_EVENTS_URL, the gateway's GET /api/config, the default."""
        if self.config.events_url:
            return self.config.events_url.rstrip("/")
        try:
            advertised = self.get("/api/config").get("events_url")
        except ApiError:
            return DEFAULT_EVENTS_URL  # a gateway from before /api/config
        if advertised == "":
            return self.config.url  # same origin, e.g. behind nginx
        return str(advertised or DEFAULT_EVENTS_URL).rstrip("/")
