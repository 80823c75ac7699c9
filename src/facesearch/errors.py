"""Wire errors: one exception class per Rekognition error shape, each carrying its code and HTTP status."""

from __future__ import annotations


class RekognitionError(Exception):
    """Base of every error that reaches the wire; ``code`` is the botocore shape name."""

    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        return type(self).__name__


class AccessDeniedException(RekognitionError):
    pass


class ConflictException(RekognitionError):
    pass


class IdempotentParameterMismatchException(RekognitionError):
    pass


class ImageTooLargeException(RekognitionError):
    pass


class InternalServerError(RekognitionError):
    status = 500


class InvalidImageFormatException(RekognitionError):
    pass


class InvalidPaginationTokenException(RekognitionError):
    pass


class InvalidParameterException(RekognitionError):
    pass


class InvalidS3ObjectException(RekognitionError):
    pass


class ProvisionedThroughputExceededException(RekognitionError):
    pass


class ResourceAlreadyExistsException(RekognitionError):
    pass


class ResourceNotFoundException(RekognitionError):
    pass


class ServiceQuotaExceededException(RekognitionError):
    pass


class ThrottlingException(RekognitionError):
    status = 503


class UnknownOperationException(RekognitionError):
    """Not a Rekognition shape: what AWS JSON 1.1 services answer for an unknown X-Amz-Target."""
