"""The shared HTTP error shape: validation, HTTP errors and the unexpected, for any service."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel

from mpr_shared.http_errors import install_common_handlers

pytestmark = pytest.mark.unit


class Body(BaseModel):
    size: int


def _client() -> TestClient:
    app = FastAPI()

    @app.post("/things")
    async def things(body: Body) -> dict[str, int]:
        return {"size": body.size}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    install_common_handlers(
        app,
        service="example",
        validation_error=RequestValidationError,
        http_message=lambda exc: f"nothing at this path ({exc.status_code})",
    )
    return TestClient(app, raise_server_exceptions=False)


def test_invalid_body_names_the_field() -> None:
    response = _client().post("/things", json={"size": "big"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "size"
    assert error["message"].startswith("invalid request: size:")


def test_http_errors_use_the_services_wording() -> None:
    response = _client().get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "not_found",
        "message": "nothing at this path (404)",
        "details": None,
    }
    assert _client().get("/things").json()["error"]["code"] == "method_not_allowed"


def test_unexpected_errors_hide_internals_and_name_the_log() -> None:
    response = _client().get("/boom")
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "unexpected error; see the example log"
    assert "secret" not in response.text
