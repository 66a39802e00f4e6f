"""`python -m bench._traced_replica`: a transcoder replica that records how long each step takes.

It wraps the replica's adapter and core methods named in STEPS (the service code is not
changed), runs `python -m mpr_transcoder`, and appends one JSON line per call to the file in
BENCH_TRACE_FILE: the job id, the step, its start and its length. Starts are
``time.perf_counter()`` values, which on Linux read CLOCK_MONOTONIC, one clock for every
process of the machine, so bench/profile_replica.py can line them up with its own send and
receive times.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import json
import os
import time
from typing import Any

# (module, class, method, step); "publish" is named after the event it publishes.
STEPS = (
    ("mpr_transcoder.application.worker", "JobWorker", "handle", "handler"),
    ("mpr_transcoder.adapters.db", "SqlJobRows", "get", "jobs row read"),
    ("mpr_transcoder.adapters.broker", "BrokerEventPublisher", "publish", "publish"),
    ("mpr_transcoder.application.job_core", "JobCore", "run", "job core"),
    ("mpr_transcoder.adapters.s3", "S3Storage", "size", "S3 HEAD (size check)"),
    ("mpr_transcoder.adapters.s3", "S3Storage", "download", "S3 download"),
    ("mpr_transcoder.adapters.s3", "S3Storage", "upload", "S3 upload"),
    ("mpr_transcoder.adapters.ffmpeg", "SubprocessRunner", "run", "FFmpeg"),
    ("mpr_transcoder.adapters.ffmpeg", "SubprocessRunner", "probe", "probe"),
)
_JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("job", default=None)


def _record(out, job: str | None, step: str, start: float, extra: dict) -> None:
    ms = round((time.perf_counter() - start) * 1000, 2)
    out.write(json.dumps({"job": job, "step": step, "start": start, "ms": ms, **extra}) + "\n")
    out.flush()


def _traced(method, step: str, out):
    @functools.wraps(method)
    async def wrapper(self, *args: Any, **kwargs: Any):
        name, extra = step, {}
        if step == "handler":  # handle(job, delivery): every call below belongs to this job
            _JOB.set(str(args[0].job_id))
        elif step == "publish":
            name = f"publish {type(args[0]).__name__}"
        elif step == "FFmpeg":
            extra = {"args": args[0]}
        start = time.perf_counter()
        try:
            return await method(self, *args, **kwargs)
        finally:
            _record(out, _JOB.get(), name, start, extra)

    return wrapper


def install(path: str) -> None:
    """Wrap every method in STEPS; each call appends a line to ``path``."""
    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
    for module, cls, method, step in STEPS:
        owner = getattr(importlib.import_module(module), cls)
        setattr(owner, method, _traced(getattr(owner, method), step, out))


if __name__ == "__main__":
    install(os.environ["BENCH_TRACE_FILE"])
    from mpr_transcoder.__main__ import main

    main()
