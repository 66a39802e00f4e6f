"""The one dependency mechanism: subscribers take the container's objects from the broker's
context (``bootstrap`` puts the container there once) through these aliases."""

from __future__ import annotations

from typing import Annotated

from faststream import Context

from mpr_transcoder.application.worker import JobWorker
from mpr_transcoder.metrics import Metrics

Worker = Annotated[JobWorker, Context("container.worker")]
ReplicaMetrics = Annotated[Metrics, Context("container.metrics")]
