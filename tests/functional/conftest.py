"""Functional tests share the root fixtures (tests/conftest.py): moto S3 server, buckets, store locations."""
