"""moto's S3 with conditional PUTs made atomic, as real S3's are.

moto 5.2's ``S3Response.put_object`` checks ``If-Match`` / ``If-None-Match`` and then writes, with nothing
holding other requests off in between; on a threaded moto server two PUTs with the same ``If-Match`` can both
pass the check, and one manifest swap silently overwrites the other (seen here: 8 writers x 200 faces on a
loaded machine listed 1 590 faces). Real S3 evaluates the condition and the write as one step (a losing
request gets 412 or 409 ConditionalRequestConflict). This serialises moto's conditional PUTs so the tests
exercise our code against the real service's contract, not moto's race.
"""

from __future__ import annotations

import functools
import threading

from moto.s3.responses import S3Response

_LOCK = threading.Lock()
_MARK = "_facesearch_atomic"


def make_conditional_puts_atomic() -> None:
    """Patch moto's S3 PUT handler once per process: every PUT runs under one lock."""
    original = S3Response.put_object
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def put_object(self: S3Response, *args, **kwargs):
        with _LOCK:
            return original(self, *args, **kwargs)

    setattr(put_object, _MARK, True)
    S3Response.put_object = put_object  # type: ignore[method-assign]
