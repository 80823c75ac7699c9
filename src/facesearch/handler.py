"""The Lambda entry point: pick the door the event came through and let it call the one dispatcher."""

from __future__ import annotations

from typing import Any

from facesearch.protocol import doors
from facesearch.protocol.telemetry import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway REST (v1) / HTTP (v2) events speak AWS JSON 1.1; ``{"Operation", ...}`` is direct."""
    logger.set_correlation_id(doors.request_id_of(event, context))
    if doors.is_direct(event):
        return doors.direct_invoke(event, context)
    if doors.is_http_api(event):
        return doors.http_resolver().resolve(event, context)
    if doors.is_rest_api(event):
        return doors.rest_resolver().resolve(event, context)
    return doors.unrecognised_event(event)
