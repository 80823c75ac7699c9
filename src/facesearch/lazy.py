"""Process-wide lazy singletons: created on first use, reused across warm invocations, reset by tests."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_caches: list[_Once[Any]] = []


class _Once(Generic[T]):
    """``factory``'s result per argument tuple, created at most once even when threads ask together.

    ``facesearch serve`` runs requests in threads: without the lock two first requests would both build a
    model session or a store (twice the memory, and two stores each caching its own manifests). Hits read
    the dict without the lock; a factory may call other factories, and itself with other arguments (RLock).
    """

    def __init__(self, factory: Callable[..., T]) -> None:
        self._factory = factory
        self._values: dict[Hashable, T] = {}
        self._lock = threading.RLock()
        functools.update_wrapper(self, factory)

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        key = (args, tuple(sorted(kwargs.items()))) if kwargs else args
        try:
            return self._values[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._values:
                self._values[key] = self._factory(*args, **kwargs)
            return self._values[key]

    def cache_clear(self) -> None:
        with self._lock:
            self._values.clear()


def once(factory: Callable[..., T]) -> Callable[..., T]:
    """Cache ``factory``'s result per argument tuple for the life of the container (thread-safe)."""
    cached = _Once(factory)
    _caches.append(cached)
    return cached


def reset_all() -> None:
    """Forget every cached object (sessions, clients, indexes, settings): a fresh container."""
    for cached in _caches:
        cached.cache_clear()
