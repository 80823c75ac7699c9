"""``facesearch export`` / ``facesearch import``: one collection to or from a JSON Lines file, either engine.

    facesearch export --collection C --out FILE [--store DIR|s3://bucket/prefix]
    facesearch import --collection C --in FILE [--store ...] [--engine hnsw|s3vectors] [--vector-bucket B]

The file format is ``facesearch.store.transfer``'s (versioned JSON Lines, streamed both ways); an
import's engine is ``--engine``, else the store's choice (FACESEARCH_ENGINE and its overrides).
``--store`` defaults to FACESEARCH_STORE (else the local store); the s3vectors engine needs an S3 store
and a vector bucket (``--vector-bucket`` or FACESEARCH_VECTOR_BUCKET). ``-`` as FILE is stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from facesearch.errors import RekognitionError
from facesearch.settings import get_settings
from facesearch.store import open_store, transfer
from facesearch.store.manifest import ENGINES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # One module serves both subcommands; the CLI names the parser after the one chosen.
    command = "import" if parser.prog.endswith("import") else "export"
    parser.set_defaults(transfer=command)
    parser.add_argument("--collection", required=True, help="CollectionId")
    parser.add_argument("--store", help="store folder or s3://bucket/prefix (default: FACESEARCH_STORE)")
    if command == "export":
        parser.add_argument("--out", required=True, help="file to write (JSON Lines), or - for stdout")
        return
    parser.add_argument("--in", dest="source", required=True, type=Path, help="file written by export")
    parser.add_argument(
        "--engine", choices=ENGINES, help="engine of the new collection (default: the store's)"
    )
    parser.add_argument("--vector-bucket", help="S3 Vectors bucket (default: FACESEARCH_VECTOR_BUCKET)")
    parser.add_argument("--batch", type=int, default=transfer.IMPORT_BATCH_FACES, help="faces per write")


def _store(args: argparse.Namespace):
    settings = get_settings()
    return open_store(
        args.store or settings.store,
        settings.cache_dir,
        cache_max_bytes=settings.cache_max_bytes,
        engine=settings.engine,
        engine_overrides=settings.engine_overrides,
        vector_bucket=getattr(args, "vector_bucket", None) or settings.vector_bucket,
    )


def run(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        if args.transfer == "export":
            faces = 0
            with contextlib.ExitStack() as stack:
                out = (
                    sys.stdout
                    if args.out == "-"
                    else stack.enter_context(open(args.out, "w", encoding="utf-8"))
                )
                for line in transfer.export_collection(store, args.collection):
                    out.write(line + "\n")
                    faces += line.startswith('{"type": "face"')
            print(f"facesearch export: {args.collection}: {faces} faces -> {args.out}", file=sys.stderr)
            return 0
        with args.source.open(encoding="utf-8") as lines:
            info = transfer.import_collection(
                store, lines, collection_id=args.collection, batch_faces=args.batch, engine=args.engine
            )
    except RekognitionError as error:
        print(f"facesearch {args.transfer}: {type(error).__name__}: {error.message}", file=sys.stderr)
        return 1
    engine = store.view(args.collection).manifest.engine
    print(
        f"facesearch import: {info.face_count} faces, {info.user_count} users -> "
        f"{args.collection} ({engine})",
        file=sys.stderr,
    )
    return 0
