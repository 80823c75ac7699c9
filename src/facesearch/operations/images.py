"""Image loading: decoded Bytes, or an S3Object from an allow-listed bucket, within the size limits."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from facesearch.aws import s3_client
from facesearch.errors import AccessDeniedException, ImageTooLargeException, InvalidS3ObjectException
from facesearch.protocol.shapes import (
    ImageRef,
    S3ObjectRef,
)
from facesearch.settings import ENV_ALLOWED_IMAGE_BUCKETS, get_settings

# Rekognition's documented limit for images stored in S3 (Image.Bytes is limited by the model: 5 MiB).
MAX_S3_IMAGE_BYTES = 15 * 1024 * 1024
ANY_BUCKET = "*"
# Rekognition's own wording (Developer Guide, "Error handling"; tests/conformance/README.md).
TOO_LARGE = "Image size is too large."
# Rekognition's own wording for an object it cannot read.
UNREADABLE_S3_OBJECT = (
    "Unable to get object metadata from S3. Check object key, region and/or access permissions."
)


def load_image(image: ImageRef) -> bytes:
    """The image's bytes; raises AccessDenied/InvalidS3Object/ImageTooLarge for S3 objects it cannot use."""
    if image.bytes_ is not None:
        return image.bytes_
    if image.s3_object is None:
        raise AssertionError("validation lets no Image through without Bytes or S3Object")
    return _read_s3_object(image.s3_object)


def check_allowed(ref: S3ObjectRef) -> None:
    """AccessDeniedException unless the bucket is in the configured allow-list."""
    allowed = get_settings().allowed_image_buckets
    if ANY_BUCKET not in allowed and ref.bucket not in allowed:
        raise AccessDeniedException(
            f"Access denied to S3 bucket '{ref.bucket}': it is not in the allowed image buckets "
            f"({ENV_ALLOWED_IMAGE_BUCKETS})"
        )


def _read_s3_object(ref: S3ObjectRef) -> bytes:
    check_allowed(ref)
    where = {"Bucket": ref.bucket, "Key": ref.name}
    if ref.version:
        where["VersionId"] = ref.version
    client = s3_client()
    try:
        head = client.head_object(**where)
        if head["ContentLength"] > MAX_S3_IMAGE_BYTES:
            raise ImageTooLargeException(TOO_LARGE)
        # The object may be replaced between HEAD and GET: pin the GET to the ETag we sized.
        body = client.get_object(**where, IfMatch=head["ETag"])["Body"].read(MAX_S3_IMAGE_BYTES + 1)
    except (ClientError, BotoCoreError) as exc:
        raise InvalidS3ObjectException(UNREADABLE_S3_OBJECT) from exc
    if len(body) > MAX_S3_IMAGE_BYTES:
        raise ImageTooLargeException(TOO_LARGE)
    return body
