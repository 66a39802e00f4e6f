"""`make docs`: AsyncAPI documents of every message, from each service's FastStream broker.

Each service's ``build_broker(settings)`` registers its subscribers and a documented publisher
per message it sends, without connecting. This builds each one with default settings and
writes ``docs/asyncapi-<service>.json`` and ``.yaml``, plus ``docs/asyncapi.json`` and
``.yaml`` merging all of them. A service that does not import or build is skipped with a warning
(``--strict`` makes that an error).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.specification import AsyncAPI

SERVICES = ("gateway", "catalog", "transcoder", "notifier")
DOCS = Path(__file__).resolve().parents[1] / "docs"

# Settings the documents are built with: never the caller's secrets or hosts, and a readable
# placeholder where a queue name carries a replica id.
DOC_SETTINGS = {
    "MPR_ENV": "development",
    "AMQP_URL": "amqp://127.0.0.1:5672/",
    "NOTIFIER_INSTANCE_ID": "<replica>",
    "TRANSCODER_INSTANCE_ID": "<replica>",
}
DESCRIPTIONS = {
    "gateway": "REST/GraphQL front door and owner of job state: sends job commands, applies "
    "the transcoder's job events.",
    "catalog": "Registers media from the input bucket and its notifications; publishes asset "
    "events and auto-job requests.",
    "transcoder": "Runs FFmpeg jobs and publishes their progress and outcome.",
    "notifier": "Pushes job and asset events to SSE clients and calls job webhooks.",
}


@dataclass(frozen=True)
class Built:
    service: str
    broker: RabbitBroker
    document: dict[str, Any]


def build(service: str) -> Built:
    """Build ``mpr_<service>``'s broker with default settings and render its AsyncAPI."""
    settings_module = importlib.import_module(f"mpr_{service}.settings")
    settings_cls = getattr(settings_module, f"{service.capitalize()}Settings")
    settings = settings_cls(_env_file=None, **DOC_SETTINGS)
    broker = _broker(service, settings)
    spec = AsyncAPI(
        broker,
        title=f"MPR {service}",
        version=_version(f"mpr-{service}"),
        description=DESCRIPTIONS.get(service),
    ).to_specification()
    return Built(service, broker, spec.to_jsonable())


def _broker(service: str, settings: Any) -> RabbitBroker:
    """The service's broker, built without connecting."""
    if service == "catalog":  # its composition root builds it, without I/O
        return importlib.import_module("mpr_catalog.bootstrap").bootstrap(settings).broker
    return importlib.import_module(f"mpr_{service}.app").build_broker(settings)


def merged(built: Sequence[Built]) -> dict[str, Any]:
    spec = AsyncAPI(
        *(b.broker for b in built),
        title="MPR",
        version=_version("mpr-shared"),
        description="Every message of MPR, by service: "
        + ", ".join(b.service for b in built)
        + ". Exchanges: mpr.commands (orders), mpr.events (facts), mpr.dead-letter.",
    ).to_specification()
    return spec.to_jsonable()


def write(document: dict[str, Any], stem: Path) -> list[Path]:
    """Write ``<stem>.json`` and, when PyYAML is installed, ``<stem>.yaml``."""
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    try:
        import yaml
    except ImportError:  # JSON is the document; YAML is a convenience
        return [json_path]
    yaml_path = stem.with_suffix(".yaml")
    yaml_path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return [json_path, yaml_path]


def generate(
    out: Path = DOCS, services: Sequence[str] = SERVICES, *, strict: bool = False
) -> dict[str, dict[str, Any]]:
    """Write every document; returns them by name ('<service>' and 'merged')."""
    out.mkdir(parents=True, exist_ok=True)
    built: list[Built] = []
    failed: list[str] = []
    for service in services:
        try:
            built.append(build(service))
        except Exception as exc:
            failed.append(service)
            detail = "".join(traceback.format_exception_only(exc)).strip()
            print(f"warning: skipped {service}: {detail}{_hint(exc)}", file=sys.stderr)
    if strict and failed:
        raise SystemExit(f"error: could not document {', '.join(failed)}")
    if not built:
        raise SystemExit("error: no service could be documented")
    documents = {b.service: b.document for b in built}
    for b in built:
        for path in write(b.document, out / f"asyncapi-{b.service}"):
            print(f"wrote {path}")
    documents["merged"] = merged(built)
    for path in write(documents["merged"], out / "asyncapi"):
        print(f"wrote {path}")
    return documents


def _hint(exc: Exception) -> str:
    if isinstance(exc, AttributeError) and "RabbitExchange" in str(exc):
        # publisher(queue, exchange, ...): an exchange passed positionally lands in `queue`.
        return " (hint: write broker.publisher(exchange=EXCHANGE, routing_key=...))"
    return ""


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0.0.0"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="Output folder (default: docs/).")
    parser.add_argument(
        "--strict", action="store_true", help="Fail when a service cannot be documented."
    )
    parser.add_argument(
        "services", nargs="*", metavar="SERVICE", help=f"{', '.join(SERVICES)} (default: all)"
    )
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.services) - set(SERVICES)):
        parser.error(f"unknown service(s): {', '.join(unknown)}")
    generate(args.out, args.services or SERVICES, strict=args.strict)


if __name__ == "__main__":
    main()
