"""A normal boto3 Rekognition client whose requests are SigV4-signed for API Gateway's ``execute-api``.

A FaceSearch stack puts the Rekognition protocol behind an API Gateway API with IAM auth. API Gateway only
accepts signatures scoped to ``execute-api``, while boto3 signs a Rekognition client's requests for
``rekognition``. This helper changes nothing but the signing name::

    import facesearch
    rekognition = facesearch.client("https://abc123.execute-api.eu-west-1.amazonaws.com/v1/")
    rekognition.search_faces_by_image(CollectionId="staff", Image={"Bytes": photo})

Operations, parameters, responses, paginators, waiters and ``client.exceptions`` are boto3's own.
"""

from __future__ import annotations

import re
import sys
import types
from typing import Any

SERVICE = "rekognition"
SIGNING_NAME = "execute-api"
# API Gateway's default endpoint names the region: https://<api-id>.execute-api.<region>.amazonaws.com[.cn]/
_EXECUTE_API_HOST = re.compile(
    r"^https://[^./]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?:[:/]|$)"
)


def region_of(endpoint_url: str) -> str | None:
    """The region in an API Gateway default endpoint URL; None for others (custom domains, localhost)."""
    match = _EXECUTE_API_HOST.match(endpoint_url)
    return match.group(1) if match else None


def sign_for_execute_api(request: Any, **_: Any) -> None:
    """botocore ``before-sign`` hook: scope this request's SigV4 signature to execute-api."""
    request.context.setdefault("signing", {})["signing_name"] = SIGNING_NAME


def client(endpoint_url: str, region_name: str | None = None, *, session: Any = None, **kwargs: Any) -> Any:
    """``boto3.client("rekognition", endpoint_url=...)`` signing for execute-api.

    ``region_name`` defaults to the region in an ``execute-api`` URL, then to boto3's usual chain.
    ``session`` is an optional ``boto3.session.Session`` (profiles, explicit credentials); other keyword
    arguments (``config``, ``aws_access_key_id``, ...) go to ``session.client`` unchanged.
    """
    if session is None:
        import boto3

        session = boto3.session.Session()
    rekognition = session.client(
        SERVICE, endpoint_url=endpoint_url, region_name=region_name or region_of(endpoint_url), **kwargs
    )
    rekognition.meta.events.register(f"before-sign.{SERVICE}", sign_for_execute_api)
    return rekognition


class _CallableModule(types.ModuleType):
    """Importing this module binds it as ``facesearch.client``; calling it must still make a client."""

    def __call__(self, endpoint_url: str, region_name: str | None = None, **kwargs: Any) -> Any:
        return client(endpoint_url, region_name, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
