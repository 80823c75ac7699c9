"""FaceSearch: a self-hosted face search service that speaks Amazon Rekognition's protocol."""

__version__ = "0.1.0"
