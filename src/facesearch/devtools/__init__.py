"""Developer tooling: the ``facesearch`` command, the local server, local invoke, the demo, registry fetches.

The Lambda handler never imports this package (tests/unit/test_layering.py checks it).
"""
