"""The ``facesearch`` command: demo, serve, invoke."""

from __future__ import annotations

import argparse
import importlib
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
    "invoke": (
        "facesearch.devtools.invoke",
        "run a function's handler on an event file, as `sam local invoke -e` would",
    ),
    "export": ("facesearch.devtools.transfer", "write one collection to a JSON Lines file (either engine)"),
    "import": ("facesearch.devtools.transfer", "create a collection from an export file (either engine)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facesearch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        sub_parser.set_defaults(module=module_name)
    argv = sys.argv[1:] if argv is None else argv
    args, _ = parser.parse_known_args(argv)
    module = importlib.import_module(args.module)
    sub_parser = argparse.ArgumentParser(prog=f"facesearch {args.command}")
    module.add_arguments(sub_parser)
    return module.run(sub_parser.parse_args(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
