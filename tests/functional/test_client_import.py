"""`import facesearch` stays light (no boto3 until a client is asked for), checked in a fresh interpreter."""

from __future__ import annotations

import sys


def test_package_import_does_not_import_boto3_and_both_spellings_make_clients():
    import subprocess

    code = (
        "import sys, facesearch; assert 'boto3' not in sys.modules; "
        "from facesearch.client import client; import facesearch.client as module; "
        "print(type(facesearch.client('http://127.0.0.1:1', 'us-east-1')).__name__, "
        "type(client('http://127.0.0.1:1', 'us-east-1')).__name__, module is facesearch.client)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["Rekognition", "Rekognition", "True"]
