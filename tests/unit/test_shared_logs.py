"""Logs never carry credentials from query strings."""

from __future__ import annotations

import logging

from mpr_shared.logs import configure_logging


def test_access_log_query_secrets_are_masked(capsys):
    configure_logging("notifier")
    # A fresh logger: other tests may have reconfigured uvicorn's own.
    logging.getLogger("mpr.test.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5",
        "GET",
        "/api/events?job_id=1&api_key=SUPERSECRET123",
        "1.1",
        200,
    )
    logging.getLogger("x").warning("url https://s3/o?X-Amz-Signature=abc123&X-Amz-Date=1")
    err = capsys.readouterr().err
    assert "SUPERSECRET123" not in err and "abc123" not in err
    assert "api_key=***" in err and "job_id=1" in err and "X-Amz-Date=1" in err
