"""Process-wide lazy singletons: created on first use, reused across warm invocations, reset by tests."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_caches: list[functools._lru_cache_wrapper] = []


def once(factory: Callable[..., T]) -> Callable[..., T]:
    """Cache ``factory``'s result per argument tuple for the life of the container."""
    cached = functools.cache(factory)
    _caches.append(cached)
    return cached


def reset_all() -> None:
    """Forget every cached object (sessions, clients, indexes, settings): a fresh container."""
    for cached in _caches:
        cached.cache_clear()
