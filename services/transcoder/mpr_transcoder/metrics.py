"""Prometheus metrics of one replica, in their own registry (served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Job outcomes, their wall time, what runs now and how fast FFmpeg encodes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "mpr_transcoder_jobs",
            "Job deliveries handled, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "mpr_transcoder_job_seconds",
            "Wall time of a job delivery, by outcome.",
            ["outcome"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400),
            registry=self.registry,
        )
        self.running = Gauge(
            "mpr_transcoder_running_jobs", "Jobs running on this replica.", registry=self.registry
        )
        self.speed = Histogram(
            "mpr_transcoder_ffmpeg_speed",
            "FFmpeg's reported speed of a finished run (media seconds per wall-clock second).",
            ["kind", "preset"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )

    def delivery_handled(self, outcome: str, seconds: float) -> None:
        self.jobs.labels(outcome).inc()
        self.seconds.labels(outcome).observe(seconds)

    def delivery_lost(self) -> None:
        self.jobs.labels("lost").inc()

    def ffmpeg_speed(self, kind: str, preset: str, speed: float) -> None:
        self.speed.labels(kind, preset).observe(speed)
