"""Human output on stdout: tables and key/value blocks (--json prints the API's objects instead)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from mpr_cli.output import STATUS_STYLE, Out, age, seconds, size


def table(out: Out, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    grid = Table(box=None, pad_edge=False, header_style="bold")
    for index, name in enumerate(columns):
        # The first column is an id or a key: folded, it could not be copied.
        grid.add_column(name, overflow="fold", no_wrap=index == 0)
    for row in rows:
        grid.add_row(*(_cell(v) for v in row))
    out.show(grid)


def _cell(value: Any) -> Text:
    """Plain text: a key or a log line is never read as rich markup."""
    if isinstance(value, Text):
        return value
    return Text("-" if value is None or value == "" else str(value))


def status(value: Any) -> Text:
    text = str(value)
    return Text(text, style=STATUS_STYLE.get(text, ""))


def fields(out: Out, pairs: Iterable[tuple[str, Any]]) -> None:
    """A block of 'name  value' lines."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(name, _cell(value))
    out.show(grid)


def jobs(out: Out, items: list[dict[str, Any]]) -> None:
    table(
        out,
        ("ID", "STATUS", "KIND", "PRESET", "PROGRESS", "SOURCE", "CREATED"),
        (
            (
                j["id"],
                status(j["status"]),
                j["kind"],
                j.get("preset"),
                f"{j.get('progress', 0):.0f}%",
                j["source_key"],
                age(j.get("created_at")),
            )
            for j in items
        ),
    )


def job(out: Out, j: dict[str, Any]) -> None:
    took = None
    if j.get("elapsed_seconds") is not None:
        took = seconds(j["elapsed_seconds"])
    rate = ", ".join(
        x
        for x in (
            f"{j['fps']:.0f} fps" if isinstance(j.get("fps"), int | float) else "",
            f"{j['speed']:.2f}x" if isinstance(j.get("speed"), int | float) else "",
            f"ETA {seconds(j['eta_seconds'])}" if j.get("eta_seconds") is not None else "",
        )
        if x
    )
    fields(
        out,
        [
            ("id", j["id"]),
            ("status", f"{j['status']} (attempt {j.get('attempt', 1)})"),
            ("kind", f"{j['kind']} {j.get('preset') or ''}".strip()),
            ("source", f"{j.get('source_bucket')}/{j['source_key']}"),
            ("asset", j.get("asset_id")),
            ("progress", f"{j.get('progress', 0):.1f}%" + (f"  {rate}" if rate else "")),
            ("worker", j.get("worker")),
            ("created", j.get("created_at")),
            ("started", j.get("started_at")),
            ("finished", j.get("finished_at")),
            *([("took", took)] if took else []),
            *([("error", j["error"])] if j.get("error") else []),
        ],
    )
    outputs(out, j.get("outputs") or [])


def outputs(out: Out, items: list[dict[str, Any]]) -> None:
    if items:
        out.line("")
        table(out, ("OUTPUT", "SIZE"), ((o["key"], size(o.get("size_bytes"))) for o in items))


def log_lines(j: dict[str, Any]) -> list[str]:
    """FFmpeg's last lines: log_tail (issue 11) or, before it, error_lines."""
    return list(j.get("log_tail") or j.get("error_lines") or [])


def assets(out: Out, items: list[dict[str, Any]]) -> None:
    table(
        out,
        ("ID", "KEY", "TYPE", "SIZE", "DURATION", "PROBE"),
        (
            (
                a["id"],
                a["key"],
                a.get("media_type"),
                size(a.get("size_bytes")),
                seconds(a.get("duration_seconds")),
                status(a.get("probe_status")),
            )
            for a in items
        ),
    )


def probe_summary(probe: dict[str, Any] | None) -> str | None:
    """'mov,mp4 0:10; h264 1280x720 25 fps; aac 2 ch 48000 Hz'."""
    if not probe:
        return None
    parts = [f"{probe.get('container') or '?'} {seconds(probe.get('duration'))}"]
    for s in probe.get("streams") or []:
        if s.get("type") == "video":
            fps = f" {s['frame_rate']:g} fps" if s.get("frame_rate") else ""
            parts.append(f"{s.get('codec')} {s.get('width')}x{s.get('height')}{fps}")
        else:
            parts.append(f"{s.get('codec')} {s.get('channels')} ch {s.get('sample_rate')} Hz")
    return "; ".join(parts)


def asset(out: Out, a: dict[str, Any]) -> None:
    fields(
        out,
        [
            ("id", a["id"]),
            ("key", f"{a.get('bucket')}/{a['key']}"),
            ("type", a.get("media_type")),
            ("size", size(a.get("size_bytes"))),
            ("status", a.get("status")),
            ("probe", a.get("probe_status")),
            *([("media", probe_summary(a.get("probe")))] if a.get("probe") else []),
            *([("probe error", a["probe_error"])] if a.get("probe_error") else []),
            ("created", a.get("created_at")),
        ],
    )
    if a.get("jobs"):
        out.line("")
        jobs(out, a["jobs"])


def more(out: Out, page: dict[str, Any]) -> None:
    if page.get("next_cursor"):
        out.note(f"more: --cursor {page['next_cursor']}")


def job_page(out: Out, page: dict[str, Any]) -> None:
    jobs(out, page["items"])
    more(out, page)


def asset_page(out: Out, page: dict[str, Any]) -> None:
    assets(out, page["items"])
    more(out, page)


def job_detail(out: Out, j: dict[str, Any]) -> None:
    """`mpr jobs show`: the job, then FFmpeg's last lines."""
    job(out, j)
    lines = log_lines(j)
    if lines:
        out.line("")
        out.line("FFmpeg's last lines:", style="bold")
        for line in lines:
            out.line(f"  {line}")


def presets(out: Out, items: list[dict[str, Any]]) -> None:
    table(
        out,
        ("NAME", "KIND", "DESCRIPTION"),
        ((p["name"], p["kind"], p.get("description")) for p in items),
    )


def workers(out: Out, answer: dict[str, Any]) -> None:
    table(
        out,
        ("ID", "HOST", "STATUS", "JOB", "FFMPEG", "LAST SEEN"),
        (
            (
                w["id"],
                w.get("host"),
                status(w.get("status")),
                w.get("current_job_id"),
                w.get("ffmpeg_version"),
                age(w.get("last_seen")),
            )
            for w in answer.get("items", [])
        ),
    )


def queue(out: Out, answer: dict[str, Any]) -> None:
    counts = answer.get("jobs") or {}
    fields(
        out,
        [
            ("queue", answer.get("queue")),
            ("ready", answer.get("ready")),
            ("unacked", answer.get("unacked")),
            ("consumers", answer.get("consumers")),
            ("jobs queued", counts.get("queued")),
            ("jobs running", counts.get("running")),
        ],
    )
