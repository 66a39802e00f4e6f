"""`mpr upload`: a local file into the input bucket through POST /api/uploads (no S3 keys)."""

from __future__ import annotations

import contextlib
import mimetypes
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from mpr_cli.api import Api
from mpr_cli.errors import CliError
from mpr_cli.output import Out
from mpr_cli.transfer import Meter, bytes_bar, file_chunks

PART_ATTEMPTS = 4
PARALLEL_PARTS = 10  # as boto3's TransferConfig; each part streams from the file, none is buffered
PROBE_POLL_SECONDS = 0.5
RETRY_BACKOFF = 0.5  # seconds before the first retry of a part, doubled each time


class PartFailed(Exception):
    """One PUT of one part did not succeed (S3's answer, or none)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, PartFailed):
        # 403: the URL expired or was refused (it is re-signed before the next try); 5xx, 429.
        return exc.status is None or exc.status in (403, 408, 429) or exc.status >= 500
    return False


@dataclass
class Upload:
    """One file on its way; the server's upload object as POST /api/uploads returned it."""

    api: Api
    path: Path
    size: int
    content_type: str
    created: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.created["id"])

    def put(self, url: str, offset: int, length: int, meter: Meter) -> str:
        """PUT bytes to a presigned URL; the ETag S3 gives them."""
        sent = 0

        def counted(n: int) -> None:
            nonlocal sent
            sent += n
            meter.add(n)

        try:
            response = self.api.plain.put(
                url,
                content=file_chunks(self.path, offset, length, counted),
                # A length, not chunked encoding: S3 refuses chunked PUTs to presigned URLs.
                headers={"Content-Length": str(length), "Content-Type": self.content_type},
            )
        except BaseException:
            meter.add(-sent)
            raise
        if response.is_error:
            meter.add(-sent)
            raise PartFailed(f"S3 answered HTTP {response.status_code}", response.status_code)
        return str(response.headers.get("ETag", ""))

    def part(self, number: int, url: str, meter: Meter) -> dict[str, Any]:
        """Upload one part, retried a few times with backoff; {part_number, etag}."""
        part_size = int(self.created["part_size"])
        offset = (number - 1) * part_size
        length = min(part_size, self.size - offset)
        urls = {"current": url}

        def refresh(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, PartFailed) and exc.status == 403:
                urls["current"] = self.fresh_url(number) or urls["current"]

        @retry(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(PART_ATTEMPTS),
            wait=wait_exponential(multiplier=RETRY_BACKOFF, max=8),
            before_sleep=refresh,
            reraise=True,
        )
        def attempt() -> str:
            return self.put(urls["current"], offset, length, meter)

        try:
            etag = attempt()
        except (httpx.TransportError, PartFailed) as exc:
            raise CliError(
                f"part {number} of {self.path.name} failed {PART_ATTEMPTS} times: {exc}; "
                "the upload was aborted, run the command again"
            ) from None
        return {"part_number": number, "etag": etag}

    def fresh_url(self, number: int) -> str | None:
        """A newly signed URL for one part (POST /api/uploads/{id}/parts), if the API has it."""
        try:
            answer = self.api.post(f"/api/uploads/{self.id}/parts", {"part_numbers": [number]})
        except CliError:
            return None
        for item in answer.get("parts", []) if isinstance(answer, dict) else []:
            if item.get("part_number") == number:
                return str(item["url"])
        return None

    def send(self, out: Out) -> dict[str, Any]:
        """Every byte, then POST .../complete; the completed upload object."""
        label = self.created.get("key", self.path.name)
        with bytes_bar(out) as progress:
            meter = Meter(progress, progress.add_task(str(label), total=self.size))
            if self.created.get("mode") == "multipart":
                parts = sorted(self.created.get("parts", []), key=lambda p: p["part_number"])
                body: dict[str, Any] = {"parts": self.parts(parts, meter)}
            else:
                self.single(meter)
                body = {}
        completed: dict[str, Any] = self.api.post(f"/api/uploads/{self.id}/complete", body)
        return completed

    def parts(self, parts: list[dict[str, Any]], meter: Meter) -> list[dict[str, Any]]:
        pool = ThreadPoolExecutor(PARALLEL_PARTS, thread_name_prefix="part")
        try:
            futures = [pool.submit(self.part, p["part_number"], p["url"], meter) for p in parts]
            return [f.result() for f in futures]
        except BaseException:
            # Ctrl-C or a part that gave up: stop the parts in flight instead of finishing them.
            pool.shutdown(wait=False, cancel_futures=True)
            self.api.plain.close()
            raise
        finally:
            pool.shutdown(wait=True)

    def single(self, meter: Meter) -> None:
        try:
            retry(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(PART_ATTEMPTS),
                wait=wait_exponential(multiplier=RETRY_BACKOFF, max=8),
                reraise=True,
            )(self.put)(str(self.created["url"]), 0, self.size, meter)
        except (httpx.TransportError, PartFailed) as exc:
            raise CliError(f"uploading {self.path.name} failed: {exc}") from None

    def abort(self) -> None:
        """DELETE the upload, so no incomplete multipart upload is left behind (best effort)."""
        with contextlib.suppress(CliError):
            self.api.delete(f"/api/uploads/{self.id}")


def start(api: Api, path: Path, key: str | None, overwrite: bool) -> Upload:
    """POST /api/uploads: the server says single PUT or multipart, and signs the URLs."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise CliError(f"{path} is not a file")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    request: dict[str, Any] = {
        "filename": path.name,
        "size": size,
        "content_type": content_type,
        "overwrite": overwrite,
    }
    if key:
        request["key"] = key
    created = api.post("/api/uploads", request)
    return Upload(api, path, size, content_type, created)


def upload(api: Api, out: Out, path: Path, key: str | None, overwrite: bool) -> dict[str, Any]:
    """The whole upload; aborted on the server if it fails or is interrupted."""
    pending = start(api, path, key, overwrite)
    try:
        return pending.send(out)
    except BaseException:
        pending.abort()
        raise


def asset_of(api: Api, completed: dict[str, Any]) -> dict[str, Any]:
    """The asset the upload registered (by id, or by its key when the answer had no id)."""
    if completed.get("asset_id"):
        found: dict[str, Any] = api.get(f"/api/assets/{completed['asset_id']}")
        return found
    key = completed.get("key")
    for asset in api.get("/api/assets", prefix=key, limit=100).get("items", []):
        if asset.get("key") == key and asset.get("status") == "active":
            return dict(asset)
    raise CliError(f"{key} was uploaded but is not registered; run `mpr scan --prefix {key}`")


def wait_for_probe(api: Api, out: Out, completed: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The asset once the catalog has probed it (probe_status ok or failed)."""
    deadline = time.monotonic() + timeout
    with out.spinner(f"waiting for the probe of {completed.get('key')}"):
        while True:
            try:
                asset = asset_of(api, completed)
            except CliError:
                asset = {"probe_status": "pending"}  # registered a moment later
            if asset.get("probe_status") not in (None, "pending"):
                return asset
            if time.monotonic() > deadline:
                raise CliError(f"{completed.get('key')} was not probed within {timeout:g} s")
            time.sleep(PROBE_POLL_SECONDS)
