"""Lambda entry points: the API's doors to the one dispatcher, and the scheduled maintenance job."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from facesearch import maintenance
from facesearch.protocol import doors
from facesearch.store import get_store
from facesearch.telemetry import count, logger, metrics, tracer

# Maintenance starts no collection in its last 2 minutes: the one under way can still finish, since a
# 100 000-face compaction takes 76-90 s (bench/store.py), and the function's timeout is 900 s.
MAINTENANCE_SAFETY_MARGIN_MS = 120_000


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway REST (v1) / HTTP (v2) events speak AWS JSON 1.1; ``{"Operation", ...}`` is direct."""
    return doors.handle(event, context)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def maintenance_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The scheduled tick (its EventBridge event carries nothing we need): ``maintenance.run``'s report."""
    logger.set_correlation_id(doors.request_id_of(event, context))
    remaining_ms = context.get_remaining_time_in_millis() - MAINTENANCE_SAFETY_MARGIN_MS
    report = maintenance.run(get_store(), deadline=time.monotonic() + remaining_ms / 1000)
    count("CollectionsCompacted", report.collections_compacted)
    count("SegmentsCollected", report.segments_collected)
    logger.info("maintenance done", extra=dataclasses.asdict(report))
    return dataclasses.asdict(report)
