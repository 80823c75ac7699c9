"""The web console in a real browser: create a collection, index a photo, find the person in another.

Each step's screenshot is saved under build/screenshots/ (console-NN-step.png).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import subprocess
import sys

import pytest
from PIL import Image

from facesearch.devtools.registry import FACE_API, extract
from facesearch.devtools.server import LocalServer
from tests.browser.conftest import shot

# Rekognition's default FaceMatchThreshold; sample3's largest face is in sample1 (devtools.demo).
DEFAULT_THRESHOLD = 80


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    paths = extract(FACE_API, ["package/demo/sample1.jpg", "package/demo/sample3.jpg"], folder)
    blank = folder / "empty-wall.jpg"
    Image.new("RGB", (480, 320), (180, 170, 160)).save(blank, format="JPEG")
    return {path.name: path for path in [*paths, blank]}


def test_find_a_person_across_photos(browser_page, photos, tmp_path):
    page = browser_page
    with LocalServer(str(tmp_path / "store"), thumbnails=True) as server:
        page.goto(server.url + "/")
        page.get_by_text("No collection yet").wait_for()
        shot(page, "console-01-empty")

        # Keyboard: the first Tab stop is the new collection's id, labelled for screen readers.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "new-collection"
        page.keyboard.type("friends")
        page.keyboard.press("Enter")
        page.get_by_role("button", name="Delete collection friends").wait_for()
        assert page.locator("#collections tr.current th").inner_text() == "friends"
        shot(page, "console-02-collection-created")

        page.get_by_label("Photos to index").set_input_files(str(photos["sample1.jpg"]))
        page.wait_for_function("document.getElementById('index-summary').textContent.startsWith('Indexed')")
        summary = page.locator("#index-summary").inner_text()
        assert re.match(r"Indexed [1-9]\d* faces? from 1 of 1 photo into friends", summary), summary
        assert "indexed as sample1.jpg" in page.locator("#index-log li").first.inner_text()
        page.locator("#faces img.thumb").first.wait_for()
        shot(page, "console-03-photo-indexed")

        page.get_by_label("Photo to search").set_input_files(str(photos["sample3.jpg"]))
        page.locator("#search-photo .face").first.wait_for()
        faces = page.locator("#search-photo .face").count()
        assert faces >= 2
        label = page.locator("#search-photo .face").first.get_attribute("aria-label")
        assert re.match(r"Search with face 1: confidence \d+\.\d, brightness \d+, sharpness \d+", label), (
            label
        )
        shot(page, "console-04-faces-detected")

        page.get_by_role("button", name="Search all faces").click()
        page.wait_for_function(f"document.querySelectorAll('#results article').length === {faces}")
        kept = page.locator("#results li:not(.dropped)", has_text="sample1.jpg")
        assert kept.count() >= 1, page.locator("#results").inner_text()
        best = max(float(text) for text in kept.locator(".sim").all_inner_texts())
        assert best >= DEFAULT_THRESHOLD
        shot(page, "console-05-match-found")

        # The slider shows what a stricter FaceMatchThreshold keeps: nothing above the best similarity.
        slider = page.get_by_label("FaceMatchThreshold")
        slider.fill(str(min(100, int(best) + 1)))
        assert page.locator("#results li:not(.dropped)", has_text="sample1.jpg").count() == 0
        assert page.locator("#results li.dropped", has_text="sample1.jpg").count() >= 1
        shot(page, "console-06-threshold-raised")

        # One face by keyboard: focus its box and press Enter.
        page.locator("#search-photo .face").nth(1).focus()
        page.keyboard.press("Enter")
        page.locator("#search-photo .face.searched").nth(1).wait_for()


@contextlib.contextmanager
def serve_process(store):
    """`facesearch serve` as its own process, so that stopping it really closes every connection."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    command = [
        sys.executable,
        "-m",
        "facesearch",
        "serve",
        "--store",
        str(store),
        "--port",
        str(port),
        "--quiet",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert "serving the Rekognition protocol" in process.stdout.readline()
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_error_states_are_shown_as_messages(browser_page, photos, tmp_path):
    page = browser_page
    with serve_process(tmp_path / "store") as (process, url):
        page.goto(url + "/")
        page.get_by_label("New collection id").fill("errors")
        page.get_by_role("button", name="Create").click()
        page.get_by_role("button", name="Delete collection errors").wait_for()

        page.get_by_label("Photo to search").set_input_files(str(photos["empty-wall.jpg"]))
        alert = page.get_by_role("alert")
        alert.get_by_text("No face detected in empty-wall.jpg").wait_for()
        shot(page, "console-07-no-face")

        page.get_by_label("New collection id").fill("errors")
        page.get_by_role("button", name="Create").click()
        alert.get_by_text("ResourceAlreadyExistsException").wait_for()
        shot(page, "console-08-already-exists")
        process.terminate()
        process.wait(timeout=30)

    # The server is gone: the next request says so instead of failing silently.
    page.get_by_role("button", name="Refresh").click()
    alert.get_by_text("Cannot reach the FaceSearch server").wait_for()
    assert "is `facesearch serve` still running?" in alert.inner_text()
    shot(page, "console-09-server-down")


def test_an_oversized_photo_reports_the_services_error(browser_page, tmp_path):
    page = browser_page
    noisy = tmp_path / "huge.png"
    # Random pixels do not compress: a PNG well over Image.Bytes' 5 MiB limit.
    Image.frombytes("RGB", (1400, 1400), random.Random(7).randbytes(1400 * 1400 * 3)).save(noisy)
    with LocalServer(str(tmp_path / "store")) as server:
        page.goto(server.url + "/")
        page.get_by_label("Photo to search").set_input_files(str(noisy))
        page.get_by_role("alert").get_by_text("Detect faces in huge.png").wait_for()
        assert "ImageTooLargeException" in page.get_by_role("alert").inner_text()
        shot(page, "console-10-image-too-large")
