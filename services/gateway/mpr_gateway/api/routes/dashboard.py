"""The web dashboard: ``/`` serves its page, ``/ui/`` its static files (mpr_gateway/web).

The page needs no API key to load (it asks for one and sends it as X-API-Key); every call it
makes goes through the same authenticated /api routes as curl. A strict Content-Security-Policy
keeps data that reaches the page (keys, filenames, FFmpeg logs) from running as script.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from mpr_gateway.settings import GatewaySettings

WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
STATIC_PREFIX = "/ui"
# Presigned URLs for AWS S3 name a regional, virtual-hosted endpoint of the bucket.
AWS_S3_SOURCE = "https://*.amazonaws.com"

STATIC_HEADERS = ((b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff"))

router = APIRouter(include_in_schema=False)


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``; None for '' (same origin) or a non-HTTP URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(events_url: str, s3_url: str | None) -> str:
    """The page's CSP: its own scripts and styles only; the API, the SSE stream and S3."""
    s3 = origin(s3_url) if s3_url else AWS_S3_SOURCE
    connect = ["'self'", *(o for o in (origin(events_url), s3) if o)]
    media = ["'self'", "blob:", *([s3] if s3 else [])]  # blob: hls.js feeds MediaSource
    directives = {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", *([s3] if s3 else [])],
        "media-src": media,
        "connect-src": list(dict.fromkeys(connect)),
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def events_url(settings: GatewaySettings) -> str:
    """Where the page opens its SSE stream (PUBLIC_EVENTS_URL; '' is this origin)."""
    return settings.public_events_url


@cache
def _page() -> bytes:
    return (WEB_ROOT / "index.html").read_bytes()


def page_headers(settings: GatewaySettings) -> dict[str, str]:
    s3_url = settings.s3_public_endpoint_url or settings.s3_endpoint_url
    return {
        "Content-Security-Policy": content_security_policy(events_url(settings), s3_url),
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request) -> HTMLResponse:
    """The dashboard page; its script asks for an API key and calls /api."""
    settings: GatewaySettings = request.app.state.container.settings
    return HTMLResponse(_page(), headers=page_headers(settings))


class DashboardFiles(StaticFiles):
    """StaticFiles that revalidate (ETag) on every load and are never sniffed as HTML."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *STATIC_HEADERS]
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at / and its files under /ui/."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, DashboardFiles(directory=WEB_ROOT), name="dashboard")
