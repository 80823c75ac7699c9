"""The ``facesearch`` command explains itself: every subcommand's --help lists its options."""

from __future__ import annotations

import pytest

from facesearch.devtools import cli, server
from facesearch.settings import LOCAL_STORE_DIR

EXPECTED_OPTIONS = {
    "demo": ["--store"],
    "serve": ["--store", "--port", "--host", "--thumbnails", "--quiet"],
    "index": ["SOURCE", "--collection", "--store", "--endpoint", "--workers", "--report"],
    "search": ["PHOTO", "--collection", "--store", "--endpoint", "--all-faces", "--threshold"],
    "invoke": ["--function", "--env-vars"],
    "export": ["--collection", "--store", "--out"],
    "import": ["--collection", "--store", "--in", "--engine"],
}


def test_every_command_is_covered():
    assert set(EXPECTED_OPTIONS) == set(cli.COMMANDS)


@pytest.mark.parametrize("command", sorted(EXPECTED_OPTIONS))
def test_help_of_each_command_shows_its_options(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])

    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: facesearch {command}")
    for option in EXPECTED_OPTIONS[command]:
        assert option in shown, f"{command} --help does not mention {option}"


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])

    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert all(command in shown for command in cli.COMMANDS)


def test_unknown_command_is_an_error_naming_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["frobnicate"])

    assert exited.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_serve_defaults_to_the_per_user_store():
    import argparse

    parser = argparse.ArgumentParser()
    server.add_arguments(parser)

    args = parser.parse_args([])

    assert args.store == str(LOCAL_STORE_DIR)
    assert args.thumbnails is False
