"""A small HTTP/1.1 keep-alive load generator (runs in its own process, loopback only).

Closed loop: ``--connections`` clients send ``--requests`` requests as fast as answers come.
Open loop: ``--rate`` requests per second for ``--requests`` requests; latency is measured from
each request's scheduled time, so a slow server cannot hide its queueing (no coordinated
omission). Prints one JSON line with throughput, latency percentiles and status counts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 10.0


def build_request(method: str, url: str, headers: dict[str, str], body: bytes) -> bytes:
    parts = urlsplit(url)
    lines = [f"{method} {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def roundtrip(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status


async def connect(url: str) -> Connection:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    return Connection(reader, writer)


def summary(latencies: list[float], statuses: collections.Counter, elapsed: float) -> dict:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    return {
        "requests": len(ordered),
        "seconds": round(elapsed, 3),
        "rps": round(len(ordered) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
        "statuses": dict(statuses),
    }


async def closed_loop(url: str, request: bytes, total: int, connections: int) -> dict:
    latencies: list[float] = []
    statuses: collections.Counter = collections.Counter()
    remaining = total

    async def client() -> None:
        nonlocal remaining
        conn = await connect(url)
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            statuses[await asyncio.wait_for(conn.roundtrip(request), TIMEOUT_SECONDS)] += 1
            latencies.append(time.perf_counter() - started)
        conn.writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return summary(latencies, statuses, time.perf_counter() - started)


async def open_loop(url: str, request: bytes, total: int, rate: float, connections: int) -> dict:
    latencies: list[float] = []
    statuses: collections.Counter = collections.Counter()
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await connect(url))

    async def one(scheduled: float) -> None:
        conn = await pool.get()
        try:
            statuses[await asyncio.wait_for(conn.roundtrip(request), TIMEOUT_SECONDS)] += 1
            latencies.append(time.perf_counter() - scheduled)
        finally:
            pool.put_nowait(conn)

    start = time.perf_counter()
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return summary(latencies, statuses, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--body", default="")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args()
    host = urlsplit(args.url).hostname or ""
    if not (host.startswith("127.") or host in {"localhost", "::1"}):
        raise SystemExit("load is only generated against loopback addresses")
    headers = dict(h.split(": ", 1) for h in args.header)
    request = build_request(args.method, args.url, headers, args.body.encode())
    if args.rate:
        coro = open_loop(args.url, request, args.requests, args.rate, args.connections)
    else:
        coro = closed_loop(args.url, request, args.requests, args.connections)
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
