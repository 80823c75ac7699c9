"""What lets one process run requests in threads: per-thread resolvers, once-only factories, metrics lock."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from facesearch import lazy
from facesearch.protocol import doors
from facesearch.telemetry import count, metrics
from tests.support.events import rest_event

MEETING_SECONDS = 30.0  # a bound on a failing run only
# How long a second thread is given to (wrongly) get through while the first holds the way.
ABSENCE_SECONDS = 0.5


class _Context:
    aws_request_id = "unit"
    function_name = "facesearch-unit"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:facesearch-unit"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def test_each_thread_answers_with_its_own_request(monkeypatch):
    """Two requests meet in the middle of routing; each answer still names its own request id.

    A resolver shared by the threads keeps the event it resolved last: the first request would then
    answer with the second's id."""
    barrier = threading.Barrier(2, timeout=MEETING_SECONDS)
    route = doors._operation_from_target

    def meeting(target):
        barrier.wait()
        return route(target)

    monkeypatch.setattr(doors, "_operation_from_target", meeting)
    # An invalid CollectionId: refused by validation, before any store is touched.
    events = [rest_event("DescribeCollection", {"CollectionId": ""}) for _ in range(2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda event: doors.handle(event, _Context()), events))
    for event, answer in zip(events, answers, strict=True):
        assert answer["statusCode"] == 400
        headers = answer.get("multiValueHeaders") or {}
        assert headers.get(doors.REQUEST_ID_HEADER) == [event["requestContext"]["requestId"]], (
            answer == event["requestContext"]["requestId"]
        )


def test_a_factory_runs_once_when_threads_ask_together():
    calls: list[int] = []
    second_inside = threading.Barrier(2, timeout=ABSENCE_SECONDS)

    @lazy.once
    def expensive() -> object:
        calls.append(threading.get_ident())
        # Without the factory's lock the second caller comes in here too and meets the first.
        with contextlib.suppress(threading.BrokenBarrierError):
            second_inside.wait()
        return object()

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            made = list(pool.map(lambda _: expensive(), range(2)))
    finally:
        lazy._caches.remove(expensive)  # type: ignore[arg-type]
    assert len(calls) == 1
    assert made[0] is made[1]


def test_reset_forgets_what_a_factory_made():
    @lazy.once
    def made(key: str) -> object:
        return object()

    try:
        first = made("a")
        assert made("a") is first
        assert made("b") is not first
        lazy.reset_all()
        assert made("a") is not first
    finally:
        lazy._caches.remove(made)  # type: ignore[arg-type]


def test_metrics_wait_while_another_request_flushes(monkeypatch, capsys):
    """A metric added while another thread flushes waits for the flush (Powertools iterates the set)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()
    flushing, release, added = threading.Event(), threading.Event(), threading.Event()
    serialize = type(metrics.provider).serialize_metric_set

    def slow_serialize(self, *args, **kwargs):
        flushing.set()
        release.wait(MEETING_SECONDS)
        return serialize(self, *args, **kwargs)

    monkeypatch.setattr(type(metrics.provider), "serialize_metric_set", slow_serialize)
    count("Before", 1)

    def add_during_flush():
        flushing.wait(MEETING_SECONDS)
        count("During", 1)
        added.set()

    adder = threading.Thread(target=add_during_flush)
    adder.start()
    flusher = threading.Thread(target=metrics.flush_metrics)
    flusher.start()
    assert flushing.wait(MEETING_SECONDS)
    got_through = added.wait(ABSENCE_SECONDS)
    release.set()
    flusher.join(MEETING_SECONDS)
    adder.join(MEETING_SECONDS)
    metrics.clear_metrics()
    assert not got_through, "a metric was added while the metric set was being serialised"
    printed = capsys.readouterr().out
    assert '"Before"' in printed and '"During"' not in printed
