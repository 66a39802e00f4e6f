"""API keys: parsing, the presented key, and the client a key belongs to."""

from __future__ import annotations

import pytest

from mpr_shared.auth import ApiKeys, presented_key


def test_parse_named_and_bare_keys() -> None:
    keys = ApiKeys.parse(" ops:k1 , bare-key, ci:k:with:colons,, ")
    assert keys.by_name() == {"ops": "k1", "key2": "bare-key", "ci": "k:with:colons"}


def test_parse_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError, match="entry 1 \\('ops'\\) has an empty key"):
        ApiKeys.parse("ops:")


def test_client_names_the_owner_of_a_key() -> None:
    keys = ApiKeys({"alice": "k-alice", "bob": "k-bob"})
    assert keys.client("k-bob") == "bob"
    assert keys.client("k-alice") == "alice"
    assert keys.client("k-carol") is None
    assert keys.client("") is None
    assert keys.client(None) is None


def test_no_keys_is_falsy() -> None:
    assert not ApiKeys.parse("")
    assert ApiKeys.parse("x:y")


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({"authorization": "Bearer  tok "}, None, "tok"),
        ({"authorization": "Basic abc", "x-api-key": "hdr"}, None, "hdr"),
        ({"authorization": "Bearer "}, "q", "q"),
        ({}, " q ", "q"),
        ({}, "  ", None),
        ({}, None, None),
    ],
)
def test_presented_key_order(
    headers: dict[str, str], query: str | None, expected: str | None
) -> None:
    assert presented_key(headers, query) == expected
