"""NotifierSettings: API keys, secrets, production guards."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from mpr_notifier.settings import NotifierSettings

REAL_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
PROD = {
    "MPR_ENV": "production",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "real-aws-secret",
    "AMQP_URL": "amqp://mpr:real-password@rabbit:5672/",
    "WEBHOOK_SECRET": REAL_SECRET,
    "MPR_API_KEYS": "ops:k1",
}


def test_defaults_work_locally() -> None:
    s = NotifierSettings(_env_file=None)
    assert (s.notifier_host, s.notifier_port) == ("127.0.0.1", 8001)
    assert not s.api_keys
    assert s.cors_origins == ()
    assert s.database_role == "mpr_notifier"
    assert s.sse_buffer_size == 10_000


def test_api_keys_accept_named_and_bare_keys() -> None:
    s = NotifierSettings(_env_file=None, MPR_API_KEYS=" ops:k1 , bare-key,, ci:k:with:colons ")
    assert s.api_keys.by_name() == {"ops": "k1", "key2": "bare-key", "ci": "k:with:colons"}
    assert s.api_keys.client("k:with:colons") == "ci"


def test_an_api_key_entry_without_a_key_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match=r"MPR_API_KEYS entry 2 \('ci'\) has an empty key"):
        NotifierSettings(_env_file=None, MPR_API_KEYS="ops:k1,ci:")


def test_production_with_real_values_starts() -> None:
    assert NotifierSettings(_env_file=None, **PROD).api_keys.by_name() == {"ops": "k1"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"MPR_API_KEYS": ""}, "without MPR_API_KEYS"),
        ({"WEBHOOK_SECRET": None}, "development WEBHOOK_SECRET"),
        ({"AMQP_URL": "amqp://guest:guest@rabbit/"}, "AMQP_URL"),
    ],
)
def test_production_refuses_missing_or_placeholder_values(override: dict, message: str) -> None:
    env = {**PROD, **override}
    env = {k: v for k, v in env.items() if v is not None}
    with pytest.raises(ValidationError, match=message):
        NotifierSettings(_env_file=None, **env)


@pytest.mark.parametrize("secret", ["not-whsec", "whsec_c2hvcnQ="])
def test_webhook_secret_format_is_checked(secret: str) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        NotifierSettings(_env_file=None, WEBHOOK_SECRET=secret)


def test_cors_origins_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", " http://127.0.0.1:8000 , https://mpr.example.com,")
    assert NotifierSettings(_env_file=None).cors_origins == (
        "http://127.0.0.1:8000",
        "https://mpr.example.com",
    )


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8000/", "127.0.0.1:8000", "*", "http://"])
def test_a_cors_origin_is_scheme_host_and_port(origin: str) -> None:
    with pytest.raises(ValidationError, match="is not an origin: use scheme://host"):
        NotifierSettings(_env_file=None, CORS_ORIGINS=origin)


def test_empty_database_role_acts_as_the_login_user() -> None:
    assert NotifierSettings(_env_file=None, DATABASE_ROLE="").database_role is None
