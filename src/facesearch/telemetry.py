"""Powertools Logger, Metrics (EMF) and Tracer shared by the handler, the doors and the operations."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

# template.yaml sets these for Lambda; the defaults keep `facesearch serve` and tests self-contained.
SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME", "facesearch")
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "FaceSearch")


class _SerialisedEMF(AmazonCloudWatchEMFProvider):
    """Powertools' EMF metrics with every change and flush under one lock.

    Powertools keeps one metric set per process and iterates it to flush; a threaded ``facesearch serve``
    adds metrics in one request while another flushes (growing a dict being iterated raises). Each call
    holds the lock for microseconds; the requests themselves never wait on each other. A flush then
    carries whatever metrics the process gathered since the last one, which in Lambda (one request per
    container at a time) are exactly its request's.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.RLock()

    def add_metric(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super().add_metric(*args, **kwargs)

    def add_dimension(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super().add_dimension(*args, **kwargs)

    def add_metadata(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super().add_metadata(*args, **kwargs)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        with self._lock:
            # A concurrent request's flush may already have published this one's metrics: an empty set
            # then is expected, and Powertools would only warn (it neither prints nor clears anything).
            if self.metric_set or raise_on_empty_metrics:
                super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)

    def clear_metrics(self) -> None:
        with self._lock:
            super().clear_metrics()


logger = Logger(service=SERVICE_NAME)
metrics = Metrics(
    namespace=METRICS_NAMESPACE,
    service=SERVICE_NAME,
    provider=_SerialisedEMF(namespace=METRICS_NAMESPACE, service=SERVICE_NAME),
)
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
