"""The one dependency mechanism: what subscribers take from the container.

``bootstrap`` puts the container in the broker's context once; each alias reads one field.
"""

from __future__ import annotations

from typing import Annotated

from faststream import Context

from mpr_catalog.application.notifications import BucketNotifications
from mpr_catalog.application.registration import Registrar
from mpr_catalog.application.scanning import Scanner
from mpr_catalog.metrics import Metrics

CONTAINER = "container"

ScannerDep = Annotated[Scanner, Context(f"{CONTAINER}.scanner")]
NotificationsDep = Annotated[BucketNotifications, Context(f"{CONTAINER}.notifications")]
RegistrarDep = Annotated[Registrar, Context(f"{CONTAINER}.registrar")]
MetricsDep = Annotated[Metrics, Context(f"{CONTAINER}.metrics")]
