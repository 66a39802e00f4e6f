"""`mpr download`: every output of a finished job, through its presigned URL."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from mpr_cli.api import Api, reaching
from mpr_cli.errors import CliError
from mpr_cli.output import Out
from mpr_cli.transfer import CHUNK, Meter, bytes_bar


def local_name(job: dict[str, Any], key: str) -> PurePosixPath:
    """Where an output goes under the directory: its path below the job's output prefix (HLS),
    or its file name; never outside the directory."""
    prefix = str(job.get("output_key", ""))
    relative = key[len(prefix) :] if prefix.endswith("/") and key.startswith(prefix) else key
    parts = [p for p in PurePosixPath(relative).parts if p not in ("", "/", ".", "..")]
    if not parts:
        raise CliError(f"output key {key!r} names no file")
    return PurePosixPath(*parts) if prefix.endswith("/") else PurePosixPath(parts[-1])


def download(api: Api, out: Out, job: dict[str, Any], directory: Path) -> list[dict[str, Any]]:
    """Write each output under ``directory``; what was written (key, path, size_bytes)."""
    outputs = job.get("outputs") or []
    total = sum(int(o.get("size_bytes") or 0) for o in outputs)
    written = []
    with bytes_bar(out) as progress:
        meter = Meter(progress, progress.add_task(f"job {job['id']}", total=total))
        for output in outputs:
            target = directory / local_name(job, output["key"])
            size = fetch(api, output["download_url"], target, meter)
            expected = output.get("size_bytes")
            if expected is not None and size != expected:
                raise CliError(f"{target}: got {size} bytes, the job says {expected}")
            written.append({"key": output["key"], "path": str(target), "size_bytes": size})
    return written


def fetch(api: Api, url: str, target: Path, meter: Meter) -> int:
    """Stream one presigned GET into ``target`` (through a .part file); bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    size = 0
    host = httpx.URL(url).host
    try:
        with reaching("the S3 server", host), api.plain.stream("GET", url) as response:
            if response.is_error:
                raise CliError(
                    f"downloading {target.name} failed: S3 answered HTTP {response.status_code}"
                    + (
                        " (the link expired; run the command again)"
                        if response.status_code == 403
                        else ""
                    )
                )
            with partial.open("wb") as f:
                for chunk in response.iter_bytes(CHUNK):
                    f.write(chunk)
                    size += len(chunk)
                    meter.add(len(chunk))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return size
