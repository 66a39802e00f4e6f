"""Settings, API-key auth and GraphQL limits."""

from __future__ import annotations

import pytest
from graphql import parse, specified_rules, validate
from pydantic import ValidationError
from starlette.datastructures import Headers

from mpr_gateway.api.auth import authenticate
from mpr_gateway.api.graphql.limits import limit_rules
from mpr_gateway.api.graphql.schema import schema
from mpr_gateway.domain.errors import Unauthorized
from mpr_gateway.settings import GatewaySettings
from mpr_shared.auth import ApiKeys

PROD = {
    "MPR_ENV": "production",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "real-secret",
    "AMQP_URL": "amqp://mpr:strong@rabbit/",
}


def test_api_keys_parse_named_and_bare():
    s = GatewaySettings(MPR_API_KEYS="alice:k1, k2 ,bob:k3")
    assert s.api_key_map == {"alice": "k1", "key2": "k2", "bob": "k3"}


def test_production_refuses_to_start_without_keys():
    with pytest.raises(ValidationError, match="MPR_API_KEYS"):
        GatewaySettings(**PROD)
    assert GatewaySettings(**PROD, MPR_API_KEYS="ops:a-long-random-key").api_key_map


def test_production_refuses_placeholder_keys():
    with pytest.raises(ValidationError, match="placeholder"):
        GatewaySettings(**PROD, MPR_API_KEYS="ops:changeme")


def test_callback_secret_must_be_a_standard_webhooks_secret():
    with pytest.raises(ValidationError, match="whsec_"):
        GatewaySettings(MPR_CALLBACK_SECRET="not base64 !!")
    assert GatewaySettings(MPR_CALLBACK_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


def test_access_log_and_pool_size_are_settings():
    assert GatewaySettings().access_log is True
    tuned = GatewaySettings(ACCESS_LOG="false", GATEWAY_DB_POOL_SIZE="50")
    assert (tuned.access_log, tuned.db_pool_size) == (False, 50)
    with pytest.raises(ValidationError, match="GATEWAY_DB_POOL_SIZE"):
        GatewaySettings(GATEWAY_DB_POOL_SIZE="0")


def test_auth_accepts_bearer_and_header_and_names_the_client():
    keys = ApiKeys({"alice": "k-alice", "bob": "k-bob"})
    assert authenticate(keys, Headers({"authorization": "Bearer k-bob"})) == "bob"
    assert authenticate(keys, Headers({"x-api-key": "k-alice"})) == "alice"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key"),
        ({"authorization": "Basic k-alice"}, "missing API key"),
        ({"authorization": "Bearer nope"}, "invalid API key"),
        ({"x-api-key": "k-alice2"}, "invalid API key"),
    ],
)
def test_auth_rejects(headers, message):
    with pytest.raises(Unauthorized, match=message):
        authenticate(ApiKeys({"alice": "k-alice"}), Headers(headers))


def test_no_configured_keys_refuses_with_instructions():
    with pytest.raises(Unauthorized, match="set MPR_API_KEYS"):
        authenticate(ApiKeys({}), Headers({"authorization": "Bearer anything"}))


def _errors(query: str, depth: int = 10, cost: int = 5000) -> list[str]:
    document = parse(query)
    errors = validate(schema.graphql_schema, document, specified_rules)
    assert not errors, errors
    return [e.message for e in validate(schema.graphql_schema, document, limit_rules(depth, cost))]


def test_graphql_depth_limit():
    deep = "{ jobs { items { asset { jobs { asset { jobs { asset { key } } } } } } } }"
    assert _errors(deep, depth=10, cost=10**9) == []
    assert any("exceeds maximum operation depth" in m for m in _errors(deep, depth=5, cost=10**9))


def test_graphql_complexity_counts_list_sizes():
    small = "{ jobs(limit: 5) { items { id asset { key } } } }"
    big = "{ assets(limit: 200) { items { id jobs(limit: 200) { id outputs { key } } } } }"
    assert _errors(small, cost=100) == []
    [message] = _errors(big, cost=5000)
    assert "too complex" in message and "limit" in message


def test_graphql_complexity_follows_fragments():
    query = """
      query Q { assets(limit: 200) { items { ...A } } }
      fragment A on Asset { id key jobs(limit: 100) { id } }
    """
    assert any("too complex" in m for m in _errors(query, cost=1000))


def test_introspection_is_not_limited():
    from graphql import get_introspection_query

    assert _errors(get_introspection_query(), depth=5, cost=50) == []
