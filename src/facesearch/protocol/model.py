"""The Rekognition service model that ships with botocore: the one source of shapes, rules and errors."""

from __future__ import annotations

import functools

from botocore.loaders import create_loader
from botocore.model import OperationModel, ServiceModel, Shape

SERVICE_NAME = "rekognition"
API_VERSION = "2016-06-27"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


# The model is immutable data read from botocore's install, so it is cached for the life of the process
# rather than per container: tests that reset containers have no reason to re-read it.
@functools.cache
def service_model() -> ServiceModel:
    """The parsed service-2.json of the installed botocore."""
    raw = create_loader().load_service_model(SERVICE_NAME, "service-2", api_version=API_VERSION)
    return ServiceModel(raw, service_name=SERVICE_NAME)


def target_prefix() -> str:
    """``RekognitionService``: the X-Amz-Target prefix of every operation."""
    return service_model().metadata["targetPrefix"]


def operation(name: str) -> OperationModel:
    """The operation model for ``name`` (botocore raises OperationNotFoundError for unknown names)."""
    return service_model().operation_model(name)


def input_shape(name: str) -> Shape:
    return operation(name).input_shape


def output_shape(name: str) -> Shape:
    return operation(name).output_shape


@functools.cache
def declared_errors(name: str) -> frozenset[str]:
    """The error shape names the model declares for operation ``name``."""
    return frozenset(shape.name for shape in operation(name).error_shapes)
