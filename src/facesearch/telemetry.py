"""Powertools Logger, Metrics (EMF) and Tracer shared by the handler, the doors and the operations."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

# template.yaml sets these for Lambda; the defaults keep `facesearch serve` and tests self-contained.
SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME", "facesearch")
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "FaceSearch")

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Time one stage of a request: an EMF metric ``<name>Ms`` and a trace subsegment ``## <name>``."""
    start = time.perf_counter()
    with tracer.provider.in_subsegment(f"## {name}"):
        yield
    metrics.add_metric(
        name=f"{name}Ms", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - start) * 1000
    )


def count(name: str, value: float) -> None:
    """An EMF count metric (faces indexed, matches returned...)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
