"""Logging set-up: one readable line per record, the service name first."""

from __future__ import annotations

import logging
import sys


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-message chatter from the transport libraries is debug detail.
    for noisy in ("aiormq", "aio_pika", "botocore", "boto3", "s3transfer", "urllib3", "faststream"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
