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

        # Deleting the collection (after the browser's confirmation) takes its faces and thumbnails with it.
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete collection friends").click()
        page.get_by_text("No collection yet").wait_for()
        assert page.locator("#results article").count() == 0  # its matches went with it
        assert list((tmp_path / "store").glob("collections/friends/**/*.jpg")) == []
        shot(page, "console-11-collection-deleted")


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


def test_a_photo_over_the_bytes_limit_is_sent_as_a_smaller_copy(browser_page, photos, tmp_path):
    page = browser_page
    huge = tmp_path / "huge.png"
    # sample1 above random pixels: a PNG well over Image.Bytes' 5 MiB (noise does not compress).
    photo = Image.open(photos["sample1.jpg"])
    canvas = Image.new("RGB", (photo.width, photo.height * 2))
    canvas.paste(photo, (0, 0))
    noise = Image.frombytes("RGB", photo.size, random.Random(7).randbytes(photo.width * photo.height * 3))
    canvas.paste(noise, (0, photo.height))
    canvas.save(huge)
    assert huge.stat().st_size > 5 * 1024 * 1024
    with LocalServer(str(tmp_path / "store")) as server:
        page.goto(server.url + "/")
        page.get_by_label("Photo to search").set_input_files(str(huge))
        page.locator("#search-photo .face").first.wait_for()
        note = page.locator("#search-note").inner_text()
        assert re.match(
            r"huge\.png is \d+\.\d MiB, over Image\.Bytes' 5 MiB limit: sent as a \d+\u00d7\d+ JPEG copy\.",
            note,
        )
        assert page.locator("#search-photo .face").count() >= 2
        # The boxes are ratios of the copy, so they sit on the faces in the top half of the photo.
        top = float(page.locator("#search-photo .face").first.evaluate("node => parseFloat(node.style.top)"))
        assert top < 50
        shot(page, "console-10-large-photo-copied")


def test_users_are_paged(browser_page, tmp_path):
    from tests.support.transport import rekognition_client

    page = browser_page
    with LocalServer(str(tmp_path / "store")) as server:
        rekognition = rekognition_client(server.url)
        rekognition.create_collection(CollectionId="club")
        names = [f"member-{n:02d}" for n in range(12)]
        for name in names:
            rekognition.create_user(CollectionId="club", UserId=name)
        page.goto(server.url + "/")
        page.get_by_role("button", name="Open collection club").click()
        page.locator("#users td", has_text="member-").first.wait_for()
        first = page.locator("#users tr td:first-child").all_inner_texts()
        page.get_by_role("button", name="Next users").click()
        page.wait_for_function("!document.getElementById('users-prev').disabled")
        second = page.locator("#users tr td:first-child").all_inner_texts()
        assert page.get_by_role("button", name="Next users").is_disabled()
        shot(page, "console-12-users-page-2")
        page.get_by_role("button", name="Previous users").click()
        page.wait_for_function("document.getElementById('users-prev').disabled")
        assert page.locator("#users tr td:first-child").all_inner_texts() == first

    assert len(first) == 10
    assert sorted(first + second) == names
