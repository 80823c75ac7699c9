"""FaceSearch: a self-hosted face search service that speaks Amazon Rekognition's protocol."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``facesearch.client(endpoint_url)`` without importing boto3 when the package is imported.
    if name == "client":
        import importlib

        return importlib.import_module("facesearch.client")
    raise AttributeError(f"module 'facesearch' has no attribute {name!r}")
