"""The /graphql endpoint: API-key check, the JSON body, standard validation plus our limits,
then execution. GET serves GraphiQL.

Every body gets an answer in GraphQL's error shape, never a 500: JSON nested deeper than
Python's parser can follow, and documents nested deeper than graphql-core's parser allows (200)
or with more tokens than ``MAX_TOKENS``, are refused as 400.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    execute,
    parse,
    specified_rules,
    validate,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette_graphene3 import make_graphiql_handler

from mpr_gateway.api.auth import authenticate
from mpr_gateway.api.errors import TOO_DEEP, gateway_error_response
from mpr_gateway.api.graphql.dataloaders import Loaders, make_loaders
from mpr_gateway.api.graphql.limits import limit_rules
from mpr_gateway.api.graphql.schema import schema
from mpr_gateway.application.assets import AssetService
from mpr_gateway.application.jobs import JobService
from mpr_gateway.deps import get_container
from mpr_gateway.domain.errors import GatewayError, RetryLater

log = logging.getLogger(__name__)

# Tokens graphql-core parses before giving up: the largest query the UI sends has a few
# hundred; introspection about 300. https://github.com/graphql/graphql-js/pull/3684
MAX_TOKENS = 10_000


class BadOperation(Exception):
    """The body is not one GraphQL operation we can run; the message says why."""


@dataclass(frozen=True, slots=True)
class Operation:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


@dataclass(frozen=True, slots=True)
class GraphQLContext:
    """What resolvers get as ``info.context``: the caller and the application services."""

    request: Request
    client: str
    jobs: JobService
    assets: AssetService
    loaders: Loaders


def format_error(error: GraphQLError) -> dict[str, Any]:
    """GraphQL's error shape, with our code/details (and retryAfter) under ``extensions``."""
    formatted: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    if isinstance(original, GatewayError):
        extensions: dict[str, Any] = {"code": original.code, "details": original.details}
        if isinstance(original, RetryLater):
            extensions["retryAfter"] = original.retry_after
        formatted["extensions"] = extensions
    elif original is not None:
        formatted["message"] = "unexpected error; see the gateway log"
        formatted["extensions"] = {"code": "internal_error"}
    return formatted


class GraphQLEndpoint:
    """POST /graphql runs one operation; GET /graphql serves the GraphiQL page."""

    def __init__(self, max_depth: int, max_complexity: int) -> None:
        self._schema = schema.graphql_schema
        self._rules = limit_rules(max_depth, max_complexity)
        self._graphiql = make_graphiql_handler()

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":
            page: Response = self._graphiql(request)
            return page
        container = get_container(request)
        try:
            client = authenticate(container.api_keys, request.headers)
        except GatewayError as exc:
            return gateway_error_response(exc)
        try:
            operation = parse_operation(await request.body(), request.headers)
            document = parse(operation.query, max_tokens=MAX_TOKENS)
        except BadOperation as exc:
            return JSONResponse({"errors": [{"message": str(exc)}]}, status_code=400)
        except GraphQLError as exc:
            return JSONResponse({"errors": [exc.formatted]}, status_code=400)
        if errors := self._invalid(document):
            return JSONResponse({"data": None, "errors": errors}, status_code=400)
        loaders = make_loaders(container.assets, container.jobs)
        context = GraphQLContext(request, client, container.jobs, container.assets, loaders)
        return _result(await self._execute(document, operation, context))

    def _invalid(self, document: DocumentNode) -> list[Any]:
        """Standard rules first: the limit rules assume a well-formed document."""
        errors = validate(self._schema, document, specified_rules) or validate(
            self._schema, document, self._rules
        )
        return [e.formatted for e in errors]

    async def _execute(
        self, document: DocumentNode, operation: Operation, context: GraphQLContext
    ) -> ExecutionResult:
        result = execute(
            self._schema,
            document,
            context_value=context,
            variable_values=operation.variables,
            operation_name=operation.operation_name,
        )
        return await result if isawaitable(result) else result


def parse_operation(body: bytes, headers: Any) -> Operation:
    """The one operation a POST body carries; BadOperation says what is wrong with it."""
    if headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadOperation("send the operation as JSON (Content-Type: application/json)")
    try:
        payload = json.loads(body)
    except RecursionError:
        raise BadOperation(TOO_DEEP) from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadOperation("Request body is not a valid JSON") from None
    if isinstance(payload, list):
        raise BadOperation("batched operations are not supported")
    if not isinstance(payload, dict):
        raise BadOperation("the body must be a JSON object with a 'query'")
    return _operation(payload)


def _operation(payload: dict[str, Any]) -> Operation:
    query, variables, name = (payload.get(k) for k in ("query", "variables", "operationName"))
    if not isinstance(query, str) or not query.strip():
        raise BadOperation("give a 'query' string")
    if variables is not None and not isinstance(variables, dict):
        raise BadOperation("'variables' must be a JSON object")
    if name is not None and not isinstance(name, str):
        raise BadOperation("'operationName' must be a string")
    return Operation(query, variables, name)


def _result(result: ExecutionResult) -> JSONResponse:
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        for error in result.errors:
            if error.original_error and not isinstance(error.original_error, GatewayError):
                log.error("GraphQL resolver failed", exc_info=error.original_error)
        body["errors"] = [format_error(e) for e in result.errors]
    return JSONResponse(body)
