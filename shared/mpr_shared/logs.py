"""Logging set-up: one readable line per record, the service name first."""

from __future__ import annotations

import logging
import re
import sys

# Credentials that may ride in a query string (EventSource cannot send headers).
_SECRET_QUERY = re.compile(r"((?:api_key|token|X-Amz-Signature|X-Amz-Credential)=)[^&\s\"]+", re.I)


class RedactSecrets(logging.Filter):
    """Masks credentials in query strings, e.g. uvicorn's access log of ?api_key=…"""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_QUERY.sub(r"\1***", record.msg)
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-message chatter from the transport libraries is debug detail.
    for noisy in ("aiormq", "aio_pika", "botocore", "boto3", "s3transfer", "urllib3", "faststream"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
