"""One credential rule for every boto3 client (mpr_shared.aws, CommonSettings.aws_credentials)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mpr_shared.aws import aws_client
from mpr_shared.settings import CommonSettings
from mpr_shared.storage import get_s3_client

KEY_ID, SECRET, TOKEN = "ASIAEXAMPLEKEY000001", "s" * 40, "IQoJb3JpZ2luX2VjE" + "t" * 60
REAL_AMQP = "amqp://mpr:a-real-password@rabbit:5672/"


def settings(**env: str) -> CommonSettings:
    return CommonSettings(_env_file=None, **env)  # type: ignore[call-arg]


def test_static_keys_carry_the_session_token_to_the_client() -> None:
    env = settings(
        MPR_ENV="test",
        AWS_ACCESS_KEY_ID=KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_SESSION_TOKEN=TOKEN,
        S3_ENDPOINT_URL="",
    )
    frozen = get_s3_client(env)._request_signer._credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (KEY_ID, SECRET, TOKEN)


def test_without_static_keys_the_default_chain_finds_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What Lambda's runtime sets is found by boto3's chain, token included."""
    env = settings(MPR_ENV="production", AMQP_URL=REAL_AMQP)
    assert env.aws_credentials() == {}
    # Read by boto3 itself, after the settings were made (as on a role's rotation).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    client = aws_client("stepfunctions", env)
    credentials = client._request_signer._credentials
    assert credentials.method == "env"
    assert credentials.get_frozen_credentials().token == TOKEN


def test_without_static_keys_web_identity_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """IRSA / Pod Identity: a role and a token file, no keys; boto3 assumes the role lazily."""
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/mpr-gateway")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    client = aws_client("s3", settings(MPR_ENV="production", AMQP_URL=REAL_AMQP))
    assert client._request_signer._credentials.method == "assume-role-with-web-identity"


def test_one_key_without_the_other_is_refused() -> None:
    with pytest.raises(ValidationError, match="both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        settings(AWS_ACCESS_KEY_ID=KEY_ID)
    with pytest.raises(ValidationError, match="both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        settings(AWS_SECRET_ACCESS_KEY=SECRET)


def test_minioadmin_only_in_development_against_a_local_server() -> None:
    dev = settings(MPR_ENV="development", S3_ENDPOINT_URL="http://127.0.0.1:9000")
    assert dev.aws_credentials() == {
        "aws_access_key_id": "minioadmin",
        "aws_secret_access_key": "minioadmin",
    }
    assert settings(MPR_ENV="development", S3_ENDPOINT_URL="").aws_credentials() == {}
    assert settings(MPR_ENV="test").aws_credentials() == {}
    prod = settings(MPR_ENV="production", AMQP_URL=REAL_AMQP)
    assert prod.aws_access_key_id is None
    assert prod.aws_credentials() == {}


def test_production_refuses_placeholder_keys() -> None:
    with pytest.raises(ValidationError, match="AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"):
        settings(
            MPR_ENV="production",
            AMQP_URL=REAL_AMQP,
            AWS_ACCESS_KEY_ID="minioadmin",
            AWS_SECRET_ACCESS_KEY="minioadmin",
        )
    with pytest.raises(ValidationError, match="AWS_ACCESS_KEY_ID"):
        settings(
            MPR_ENV="production",
            AMQP_URL=REAL_AMQP,
            AWS_ACCESS_KEY_ID="minioadmin",
            AWS_SECRET_ACCESS_KEY=SECRET,
        )
