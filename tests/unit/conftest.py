"""Unit tests are pure: no sockets (pytest-socket), no subprocesses, no models, no moto."""

from __future__ import annotations

import subprocess

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def pure(monkeypatch):
    """Every socket and every child process fails the test that tries to open one."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"unit tests start no process: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    disable_socket()
    yield
    enable_socket()
