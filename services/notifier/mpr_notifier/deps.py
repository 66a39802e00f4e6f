"""FastAPI dependencies: the runtime and API-key auth."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request, status

from mpr_notifier.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_api_key(
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
    api_key: Annotated[
        str | None,
        Query(description="API key, for browser EventSource clients that cannot send headers."),
    ] = None,
) -> str | None:
    """The caller's key name; 401 unless one of MPR_API_KEYS is presented (no keys: open)."""
    keys = runtime.settings.api_keys
    if not keys:
        return None
    bearer = None
    if authorization and authorization.lower().startswith("bearer "):
        bearer = authorization[7:].strip()
    for presented in (bearer, x_api_key, api_key):
        if presented:
            for key, name in keys.items():
                if hmac.compare_digest(presented.encode(), key.encode()):
                    return name
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid API key (Authorization: Bearer KEY, X-API-Key or ?api_key=)",
        headers={"WWW-Authenticate": "Bearer"},
    )


ApiKeyDep = Annotated[str | None, Depends(require_api_key)]
