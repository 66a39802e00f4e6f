"""The `mpr` commands (typer): each parses its options, calls the API and prints the result."""

from __future__ import annotations

import functools
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import httpx
import typer

from mpr_cli import __version__, render
from mpr_cli import config as cfg
from mpr_cli.api import Api
from mpr_cli.download import download as fetch_outputs
from mpr_cli.errors import INTERRUPTED, JOB_UNSUCCESSFUL, CliError
from mpr_cli.output import Out, seconds, size
from mpr_cli.upload import upload as send_file
from mpr_cli.upload import wait_for_probe
from mpr_cli.watch import terminal, watch

HELP = (
    "The MPR command line: upload media, run jobs with live progress, download outputs.\n\n"
    "It needs the gateway's URL (MPR_URL, default http://127.0.0.1:8000) and an API key "
    "(MPR_API_KEY), or `mpr config set url|api-key`.\n\n"
    "Data goes to stdout, progress and messages to stderr; --json prints the API's objects. "
    "Exit codes: 0 ok, 1 the job failed or was cancelled, 2 a usage, connection or "
    "authentication error."
)

app = typer.Typer(
    name="mpr",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
jobs_app = typer.Typer(help="Submit, list, follow, cancel and retry jobs.", no_args_is_help=True)
assets_app = typer.Typer(help="Registered media in the input bucket.", no_args_is_help=True)
config_app = typer.Typer(help="The CLI's own settings (a file under $XDG_CONFIG_HOME/mpr).")
app.add_typer(jobs_app, name="jobs")
app.add_typer(assets_app, name="assets")
app.add_typer(config_app, name="config", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Wait = Annotated[
    bool, typer.Option("--wait", "-w", help="Follow the job with a live bar until it ends.")
]


# The HTTP transport every client uses; tests put an httpx.MockTransport here.
TRANSPORT: httpx.BaseTransport | None = None


@contextmanager
def connect() -> Iterator[Api]:
    with Api(cfg.Config.load(), transport=TRANSPORT) as api:
        yield api


P = ParamSpec("P")
R = TypeVar("R")


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """One line on stderr and the exit code for every CliError; --json also gets the API's body."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        out = Out(bool(kwargs.get("as_json")))
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            if out.as_json and exc.body is not None:
                out.json(exc.body)
            out.error(f"error: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            out.say("interrupted")
            raise typer.Exit(INTERRUPTED) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        print(f"mpr {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """The MPR command line."""


# ----------------------------------------------------------------------------- uploads


@app.command()
@handled
def upload(
    file: Annotated[Path, typer.Argument(help="The local media file.", dir_okay=False)],
    key: Annotated[
        str | None, typer.Argument(help="Key in the input bucket (default: the file's name).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an object with the same key.")] = False,
    watch_probe: Annotated[
        bool, typer.Option("--watch", help="Wait until the catalog has probed the file.")
    ] = False,
    probe_timeout: Annotated[float, typer.Option(help="Seconds --watch waits.")] = 300.0,
    as_json: Json = False,
) -> None:
    """Upload a file to the input bucket through the gateway (no S3 credentials needed).

    Large files go up in parallel parts; a failed part is retried. --json prints the completed
    upload, or with --watch the probed asset."""
    out = Out(as_json)
    with connect() as api:
        completed = send_file(api, out, file, key, overwrite)
        out.say(f"uploaded {completed.get('key')} ({size(completed.get('size'))})")
        if not watch_probe:
            if as_json:
                return out.json(completed)
            render.fields(
                out,
                [
                    ("key", f"{completed.get('bucket')}/{completed.get('key')}"),
                    ("size", size(completed.get("size"))),
                    ("asset", completed.get("asset_id")),
                ],
            )
            return None
        asset = wait_for_probe(api, out, completed, probe_timeout)
    if as_json:
        out.json(asset)
    else:
        render.asset(out, asset)
    if asset.get("probe_status") != "ok":
        out.say(f"the probe failed: {asset.get('probe_error')}")
        raise typer.Exit(JOB_UNSUCCESSFUL)
    return None


# ----------------------------------------------------------------------------- assets


@assets_app.command("ls")
@handled
def assets_ls(
    prefix: Annotated[str | None, typer.Option(help="Only keys under this prefix.")] = None,
    search: Annotated[
        str | None, typer.Option("--search", "-q", help="Keys containing this.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    as_json: Json = False,
) -> None:
    """List registered assets by key. --json prints the page as GET /api/assets returns it."""
    params = {"prefix": prefix, "q": search, "limit": limit, "cursor": cursor}
    _show(as_json, "/api/assets", render.asset_page, **params)


def _show(as_json: bool, path: str, draw: Callable[[Out, Any], None], **params: Any) -> None:
    """GET one resource: the API's JSON as is with --json, else drawn for people."""
    out = Out(as_json)
    with connect() as api:
        answer = api.get(path, **params)
    if as_json:
        out.json(answer)
    else:
        draw(out, answer)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@assets_app.command("show")
@handled
def assets_show(
    asset: Annotated[str, typer.Argument(help="Asset id, or its key.")],
    as_json: Json = False,
) -> None:
    """An asset: its probe (codecs, resolution, duration) and its jobs."""
    out = Out(as_json)
    with connect() as api:
        asset_id = asset if _is_uuid(asset) else _asset_id_of_key(api, asset)
        found = api.get(f"/api/assets/{asset_id}")
    if as_json:
        return out.json(found)
    render.asset(out, found)
    return None


def _asset_id_of_key(api: Api, key: str) -> str:
    for item in api.get("/api/assets", prefix=key, limit=200).get("items", []):
        if item.get("key") == key:
            return str(item["id"])
    raise CliError(f"no asset with the key {key!r} (mpr assets ls, or mpr scan)")


@app.command()
@handled
def scan(
    prefix: Annotated[str, typer.Option(help="Only scan keys under this prefix.")] = "",
    as_json: Json = False,
) -> None:
    """Register media that reached the input bucket some other way (the catalog lists it)."""
    out = Out(as_json)
    with connect() as api:
        result = api.post("/api/assets/scan", {"prefix": prefix})
    if as_json:
        return out.json(result)
    out.line(
        f"found {result['found']}, registered {result['registered']}, "
        f"updated {result.get('updated', 0)}, skipped {result['skipped']}"
    )
    for key in result.get("files", []):
        out.line(f"  + {key}")
    return None


class Kind(StrEnum):
    transcode = "transcode"
    trim = "trim"
    audio = "audio"
    thumbnail = "thumbnail"
    hls = "hls"


@app.command()
@handled
def presets(
    kind: Annotated[Kind | None, typer.Option(help="Only this job kind's presets.")] = None,
    as_json: Json = False,
) -> None:
    """The presets a job can name."""
    _show(as_json, "/api/presets", render.presets, kind=kind.value if kind else None)


# ----------------------------------------------------------------------------- jobs


class TrimMode(StrEnum):
    copy = "copy"
    accurate = "accurate"


class Status(StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


@jobs_app.command("submit")
@handled
def jobs_submit(
    source: Annotated[str, typer.Argument(help="An asset id, or a key in the input bucket.")],
    kind: Annotated[Kind, typer.Option(help="What to make.")] = Kind.transcode,
    preset: Annotated[
        str | None, typer.Option(help="Preset name (mpr presets); the kind's default if unset.")
    ] = None,
    start: Annotated[float | None, typer.Option(help="Trim start (s).")] = None,
    end: Annotated[float | None, typer.Option(help="Trim end (s).")] = None,
    mode: Annotated[TrimMode | None, typer.Option(help="Trim mode.")] = None,
    at: Annotated[float | None, typer.Option(help="Thumbnail time (s).")] = None,
    count: Annotated[int | None, typer.Option(help="Thumbnail sprite frame count.")] = None,
    priority: Annotated[int, typer.Option(min=0, max=9, help="0 (lowest) to 9.")] = 0,
    output_key: Annotated[str | None, typer.Option(help="Output key (or prefix for HLS).")] = None,
    wait: Wait = False,
    as_json: Json = False,
) -> None:
    """Queue a job. Prints its id; with --wait, follows it and prints the outputs.

    --json prints the job as GET /api/jobs/{id} returns it (the final one with --wait)."""
    out = Out(as_json)
    body: dict[str, Any] = {
        "kind": kind.value,
        "preset": preset,
        "start": start,
        "end": end,
        "mode": mode.value if mode else None,
        "at": at,
        "count": count,
        "priority": priority,
        "output_key": output_key,
    }
    body[("asset_id" if _is_uuid(source) else "source_key")] = source
    with connect() as api:
        job = api.post(
            "/api/jobs",
            {k: v for k, v in body.items() if v is not None},
            # The same key on a retried request returns the same job instead of a second one.
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        out.say(f"queued job {job['id']} ({job['kind']} {job.get('preset') or ''})".rstrip())
        if wait:
            job = _follow(api, out, job)
    _finish(out, job, waited=wait)


def _follow(api: Api, out: Out, job: dict[str, Any]) -> dict[str, Any]:
    """Watch a job; Ctrl-C stops watching and leaves the job running."""
    try:
        return watch(api, out, str(job["id"]), job)
    except KeyboardInterrupt:
        out.say(f"stopped watching; job {job['id']} goes on (mpr jobs watch {job['id']})")
        raise typer.Exit(INTERRUPTED) from None


def _finish(out: Out, job: dict[str, Any], waited: bool) -> None:
    """Print the job; exit 1 if it failed or was cancelled."""
    if out.as_json:
        out.json(job)
    elif not waited:
        out.line(str(job["id"]))
    elif job["status"] == "completed":
        render.outputs(out, job.get("outputs") or [])
    if job["status"] == "completed" and waited:
        took = _took(job)
        out.say(f"job {job['id']} completed{took}; fetch with: mpr download {job['id']}")
    if job["status"] in ("failed", "cancelled"):
        out.error(f"job {job['id']} {job['status']}: {job.get('error') or ''}".rstrip(": "))
        for line in render.log_lines(job)[-20:]:
            out.note(f"  {line}")
        raise typer.Exit(JOB_UNSUCCESSFUL)


def _took(job: dict[str, Any]) -> str:
    try:
        started = datetime.fromisoformat(str(job["started_at"]))
        finished = datetime.fromisoformat(str(job["finished_at"]))
    except (KeyError, TypeError, ValueError):
        return ""
    return f" in {seconds((finished - started).total_seconds())}"


@jobs_app.command("ls")
@handled
def jobs_ls(
    status: Annotated[Status | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[Kind | None, typer.Option(help="Only jobs of this kind.")] = None,
    asset: Annotated[str | None, typer.Option(help="Only jobs of this asset id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    as_json: Json = False,
) -> None:
    """Jobs, newest first. --json prints the page as GET /api/jobs returns it."""
    params = {
        "status": status.value if status else None,
        "kind": kind.value if kind else None,
        "asset_id": asset,
        "limit": limit,
        "cursor": cursor,
    }
    _show(as_json, "/api/jobs", render.job_page, **params)


JobId = Annotated[str, typer.Argument(help="The job's id.")]


@jobs_app.command("show")
@handled
def jobs_show(job_id: JobId, as_json: Json = False) -> None:
    """A job: status, progress, timestamps, error and FFmpeg's last lines, outputs."""
    _show(as_json, f"/api/jobs/{job_id}", render.job_detail)


@jobs_app.command("cancel")
@handled
def jobs_cancel(job_id: JobId, as_json: Json = False) -> None:
    """Cancel a job: a queued one now, a running one as soon as its worker hears."""
    out = Out(as_json)
    with connect() as api:
        job = api.post(f"/api/jobs/{job_id}/cancel")
    if as_json:
        return out.json(job)
    out.line(f"{job['id']} {job['status']}")
    return None


@jobs_app.command("retry")
@handled
def jobs_retry(job_id: JobId, wait: Wait = False, as_json: Json = False) -> None:
    """Run a failed or cancelled job again (a new attempt)."""
    out = Out(as_json)
    with connect() as api:
        job = api.post(f"/api/jobs/{job_id}/retry")
        out.say(f"job {job['id']} queued again (attempt {job.get('attempt')})")
        if wait:
            job = _follow(api, out, job)
    _finish(out, job, waited=wait)


@jobs_app.command("watch")
@handled
def jobs_watch(job_id: JobId, as_json: Json = False) -> None:
    """Follow a job live (percent, fps, speed, ETA) until it ends; Ctrl-C stops watching only.

    Exit 0 when it completed, 1 when it failed or was cancelled."""
    out = Out(as_json)
    with connect() as api:
        job = api.get(f"/api/jobs/{job_id}")
        if terminal(job):
            out.say(f"job {job_id} already {job['status']}")
        job = _follow(api, out, job)
    _finish(out, job, waited=True)


# ----------------------------------------------------------------------------- downloads


@app.command()
@handled
def download(
    job_id: JobId,
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Directory to write to.", file_okay=False)
    ] = Path("."),
    as_json: Json = False,
) -> None:
    """Fetch every output of a completed job (HLS keeps its folder layout).

    Prints the paths written; --json prints [{key, path, size_bytes}]."""
    out = Out(as_json)
    with connect() as api:
        job = api.get(f"/api/jobs/{job_id}")
        if job["status"] in ("failed", "cancelled"):
            out.error(f"job {job_id} {job['status']}: nothing to download")
            raise typer.Exit(JOB_UNSUCCESSFUL)
        if job["status"] != "completed":
            raise CliError(
                f"job {job_id} is {job['status']}; wait for it first (mpr jobs watch {job_id})"
            )
        written = fetch_outputs(api, out, job, output_dir)
    if as_json:
        return out.json(written)
    for item in written:
        out.line(item["path"])
    total = sum(i["size_bytes"] for i in written)
    out.say(f"downloaded {len(written)} file(s), {size(total)}")
    return None


# ----------------------------------------------------------------------------- operations


@app.command()
@handled
def workers(as_json: Json = False) -> None:
    """Live transcoder replicas and what each is doing."""
    _show(as_json, "/api/workers", render.workers)


@app.command()
@handled
def queue(as_json: Json = False) -> None:
    """The job queue's depth and consumers, and how many jobs are queued or running."""
    _show(as_json, "/api/queue", render.queue)


# ----------------------------------------------------------------------------- config


class Name(StrEnum):
    url = "url"
    api_key = "api-key"
    events_url = "events-url"


@config_app.command("set")
@handled
def config_set(
    name: Annotated[Name, typer.Argument(help="Which setting.")],
    value: Annotated[
        str | None, typer.Argument(help="Its value (api-key: asked for when left out).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Store a setting in the config file (mode 0600). The environment still wins."""
    out = Out(as_json)
    if value is None:
        if name is not Name.api_key or not sys.stdin.isatty():
            raise CliError(f"give a value: mpr config set {name.value} VALUE")
        value = typer.prompt("API key", hide_input=True)
    path = cfg.config_path()
    stored = cfg.read_file(path)
    stored[name.value] = value.strip()
    cfg.write_file(path, stored)
    if as_json:
        return out.json({"name": name.value, "path": str(path)})
    out.say(f"{name.value} saved in {path}")
    variable = cfg.SETTINGS[name.value]
    if os.environ.get(variable):
        out.say(f"note: {variable} is set in the environment and takes precedence")
    return None


@config_app.command("get")
@handled
def config_get(name: Annotated[Name, typer.Argument()], as_json: Json = False) -> None:
    """Print one setting's value as the commands see it."""
    out = Out(as_json)
    setting = cfg.resolve(name.value, os.environ, cfg.read_file(cfg.config_path()))
    if as_json:
        return out.json({"name": name.value, "value": setting.value, "source": setting.source})
    if setting.value is None:
        raise CliError(f"{name.value} is not set ({cfg.SETTINGS[name.value]})")
    out.line(setting.value)
    return None


@config_app.command("list")
@handled
def config_list(as_json: Json = False) -> None:
    """Every setting, where it comes from; the API key masked."""
    out = Out(as_json)
    path = cfg.config_path()
    stored = cfg.read_file(path)
    rows = []
    for name in cfg.SETTINGS:
        setting = cfg.resolve(name, os.environ, stored)
        shown = cfg.masked(setting.value) if name == cfg.MASKED else setting.value
        rows.append({"name": name, "value": shown, "source": setting.source})
    if as_json:
        return out.json({"path": str(path), "settings": rows})
    render.table(
        out, ("NAME", "VALUE", "SOURCE"), ((r["name"], r["value"], r["source"]) for r in rows)
    )
    out.note(f"config file: {path}")
    return None


def main() -> None:
    app()
