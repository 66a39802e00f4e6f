"""The dashboard's page and files: served at / and /ui/ with a strict CSP, nothing from the
internet, no HTML built from strings, the vendored hls.js as the registry ships it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from mpr_gateway.api.routes.dashboard import WEB_ROOT, content_security_policy, install_dashboard
from mpr_gateway.settings import GatewaySettings


def directives(csp: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in csp.split("; "))}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(
        MPR_ENV="test",
        S3_ENDPOINT_URL="http://minio:9000",
        S3_PUBLIC_ENDPOINT_URL="http://s3.example:9000",
    )
    app = FastAPI()
    app.state.container = SimpleNamespace(settings=settings)
    install_dashboard(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def test_the_page_is_served_at_the_root_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert re.search(r"<title>[^<]*MPR[^<]*</title>", response.text)
    csp = directives(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    # Uploads and media go to the public S3 endpoint, the one presigned URLs name.
    assert "http://s3.example:9000" in csp["connect-src"]
    assert "http://s3.example:9000" in csp["media-src"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_csp_names_the_events_origin_or_none_behind_a_proxy() -> None:
    cross = directives(content_security_policy("http://127.0.0.1:8001/", "http://127.0.0.1:9000"))
    assert cross["connect-src"] == ["'self'", "http://127.0.0.1:8001", "http://127.0.0.1:9000"]
    same = directives(content_security_policy("", "http://127.0.0.1:9000"))
    assert same["connect-src"] == ["'self'", "http://127.0.0.1:9000"]
    aws = directives(content_security_policy("", None))
    assert aws["connect-src"] == ["'self'", "https://*.amazonaws.com"]


async def test_static_files_are_served_and_never_sniffed(client: httpx.AsyncClient) -> None:
    for path, kind in (("/ui/js/main.js", "javascript"), ("/ui/app.css", "text/css")):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"]
        assert response.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/ui/../settings.py")).status_code == 404


def test_every_script_module_the_page_imports_exists() -> None:
    scripts = sorted((WEB_ROOT / "js").rglob("*.js"))
    assert scripts
    for script in scripts:
        for target in re.findall(r'^import .* from "(\.[^"]+)";', script.read_text(), re.M):
            assert (script.parent / target).resolve().is_file(), f"{script.name}: {target}"


def test_nothing_is_loaded_from_the_internet_and_no_html_is_built_from_strings() -> None:
    for path in [WEB_ROOT / "index.html", *(WEB_ROOT / "js").rglob("*.js")]:
        text = path.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path
        assert not re.search(
            r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write", text
        ), path
    page = (WEB_ROOT / "index.html").read_text()
    assert "<script>" not in page and not re.search(r"\son[a-z]+=", page)  # no inline script


def test_vendored_hls_js_is_the_registry_build_with_its_license() -> None:
    vendor = WEB_ROOT / "vendor"
    digest = hashlib.sha256((vendor / "hls.js" / "hls.min.js").read_bytes()).hexdigest()
    assert digest in (vendor / "README.md").read_text()
    assert "Apache License" in (vendor / "hls.js" / "LICENSE").read_text()
