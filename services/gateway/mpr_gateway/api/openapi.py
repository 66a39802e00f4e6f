"""OpenAPI additions: the API-key security schemes (so /docs offers "Authorize").

Declared on the document rather than as FastAPI security dependencies: those would run on
every request only to be ignored, since ``ApiKeys`` does the checking."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

OPEN_PATHS = ("/api/health", "/api/ready", "/metrics")
SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = SCHEMES
            for path, operations in schema["paths"].items():
                if path in OPEN_PATHS or path.endswith("/callback"):
                    continue  # open, or signed with Standard Webhooks instead
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    # FastAPI documents replacing app.openapi: https://fastapi.tiangolo.com/how-to/extending-openapi/
    app.openapi = openapi  # type: ignore[method-assign]  # a method replaced, as documented
