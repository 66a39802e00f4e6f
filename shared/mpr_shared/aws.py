"""boto3 clients for every service and every AWS API, built one way.

Credentials follow one rule (``CommonSettings.aws_credentials``): static keys only when both
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set (with AWS_SESSION_TOKEN when set),
otherwise boto3's default chain: environment, web identity (IRSA, EKS Pod Identity),
container and instance profiles, Lambda's role.
https://boto3.amazonaws.com/v1/documentation/api/latest/guide/credentials.html
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from mpr_shared.settings import CommonSettings


def aws_client(
    service: str,
    settings: CommonSettings,
    *,
    endpoint_url: str | None = None,
    config: Config | None = None,
) -> Any:
    """A boto3 client of ``service`` in AWS_REGION, with the credentials the settings give."""
    # A session per client: boto3's default session is shared module state, not thread-safe.
    session = boto3.session.Session()
    return session.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint_url,
        region_name=settings.aws_region,
        config=config,
        **settings.aws_credentials(),
    )
