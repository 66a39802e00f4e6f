"""The /graphql endpoint: API-key check, standard validation plus our limits, then execute."""

from __future__ import annotations

import logging
from inspect import isawaitable
from typing import Any

from graphql import GraphQLError, execute, parse, specified_rules, validate
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette_graphene3 import GraphQLApp, _get_operation_from_request, make_graphiql_handler

from mpr_gateway.api.errors import gateway_error_response
from mpr_gateway.domain.errors import GatewayError
from mpr_gateway.graphql.dataloaders import make_loaders
from mpr_gateway.graphql.limits import limit_rules
from mpr_gateway.graphql.schema import schema

log = logging.getLogger(__name__)


def format_error(error: GraphQLError) -> dict[str, Any]:
    """GraphQL's error shape, with our code/details under ``extensions``."""
    formatted = error.formatted
    original = error.original_error
    if isinstance(original, GatewayError):
        formatted["extensions"] = {"code": original.code, "details": original.details}
    elif original is not None:
        formatted["message"] = "unexpected error; see the gateway log"
        formatted["extensions"] = {"code": "internal_error"}
    return formatted


class GatewayGraphQL(GraphQLApp):
    """starlette-graphene3's app with auth and validation rules; it offers no hook for extra
    rules, so the POST handler is ours (parse → validate → execute), GraphiQL stays theirs."""

    def __init__(self, max_depth: int, max_complexity: int) -> None:
        super().__init__(schema, on_get=make_graphiql_handler())
        self._rules = limit_rules(max_depth, max_complexity)

    async def _handle_http_request(self, request: Request) -> JSONResponse:
        gateway = request.app.state.gateway
        try:
            client = gateway.api_keys.authenticate(request.headers)
        except GatewayError as exc:
            return gateway_error_response(exc)
        try:
            operation = await _get_operation_from_request(request)
        except ValueError as exc:
            return JSONResponse({"errors": [{"message": str(exc.args[0])}]}, status_code=400)
        if isinstance(operation, list):
            return JSONResponse(
                {"errors": [{"message": "batched operations are not supported"}]}, 400
            )
        query = operation.get("query")
        if not isinstance(query, str) or not query.strip():
            return JSONResponse({"errors": [{"message": "give a 'query' string"}]}, 400)
        try:
            document = parse(query)
        except GraphQLError as exc:
            return JSONResponse({"errors": [exc.formatted]}, status_code=400)
        graphql_schema = self.schema.graphql_schema
        # Standard rules first: the limit rules assume a well-formed document.
        errors = validate(graphql_schema, document, specified_rules) or validate(
            graphql_schema, document, self._rules
        )
        if errors:
            return JSONResponse({"data": None, "errors": [e.formatted for e in errors]}, 400)
        context = {
            "request": request,
            "gateway": gateway,
            "client": client,
            "loaders": make_loaders(gateway.assets, gateway.jobs),
        }
        result = execute(
            graphql_schema,
            document,
            context_value=context,
            variable_values=operation.get("variables"),
            operation_name=operation.get("operationName"),
        )
        if isawaitable(result):
            result = await result
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            for error in result.errors:
                if error.original_error and not isinstance(error.original_error, GatewayError):
                    log.error("GraphQL resolver failed", exc_info=error.original_error)
            body["errors"] = [format_error(e) for e in result.errors]
        return JSONResponse(body)
