"""The ``facesearch`` command: demo, serve, index, search, invoke (``facesearch COMMAND --help`` for each)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``,
# imported only when chosen so that ``facesearch --help`` loads no model and no AWS client.
COMMANDS = {
    "demo": (
        "facesearch.devtools.demo",
        "build nothing, start from an empty local store, index real photos, search",
    ),
    "serve": (
        "facesearch.devtools.server",
        "serve the Rekognition protocol on localhost for an unchanged boto3 client",
    ),
    "index": (
        "facesearch.devtools.bulk",
        "index every photo of a folder or s3://bucket/prefix into a collection (parallel, resumable)",
    ),
    "search": (
        "facesearch.devtools.search",
        "search a collection with a photo's largest face, or with each of its faces (--all-faces)",
    ),
    "invoke": (
        "facesearch.devtools.invoke",
        "run a function's handler on an event file, as `sam local invoke -e` would",
    ),
    "export": ("facesearch.devtools.transfer", "write one collection to a JSON Lines file (either engine)"),
    "import": ("facesearch.devtools.transfer", "create a collection from an export file (either engine)"),
}
# numpy's OpenBLAS reads this once, when numpy is first imported (see main).
BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1"}


def main(argv: list[str] | None = None) -> int:
    # Before any command imports numpy: OpenBLAS's idle worker threads busy-wait after each product, and
    # in `serve`, where every search is a product over the collection's exact block, they took a core
    # from ONNX Runtime (SearchFacesByImage p50 48 -> 108 ms on a 1 000-face collection, 2 cores;
    # bench/serve_latency.py). One BLAS thread per request, as template.yaml sets for the functions.
    for name, value in BLAS_THREADS.items():
        os.environ.setdefault(name, value)
    parser = argparse.ArgumentParser(prog="facesearch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints the help, or the error naming the valid commands, and exits
    # The chosen command's own parser sees everything after its name, ``--help`` included.
    command = argv[0]
    module_name, help_text = COMMANDS[command]
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(
        prog=f"facesearch {command}",
        description=help_text,
        epilog=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(sub_parser)
    return int(module.run(sub_parser.parse_args(argv[1:])))


if __name__ == "__main__":
    sys.exit(main())
