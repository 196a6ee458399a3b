"""The demo in a real browser: `facegen demo`'s page served on loopback, driven by Debian's
headless Chromium through Playwright (no browser download). Screenshots of every step are
saved under the test's tmp folder."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from facegen.demo.studio import Studio
from tests.viz.test_report_browser import CHROMIUM, CHROMIUM_ARGS

gradio = pytest.importorskip("gradio", reason="the demo needs gradio: pip install -e '.[dev]'")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def demo_url(demo_runs):
    from facegen.demo.app import serve

    studio = Studio([demo_runs[name] for name in ("vae", "dcgan")])
    app, url = serve(studio, port=free_port(), queue_size=4)
    yield url
    app.close()
    studio.close()


@pytest.fixture
def page(demo_url, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install -e '.[dev]'"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(demo_url)
            yield page
        finally:
            browser.close()


def shown(page, elem_id: str, previous: str | None = None) -> str:
    """Wait until the image in ``#elem_id`` is there (and is not ``previous``); its src."""
    image = page.locator(f"#{elem_id} img").first
    page.wait_for_function(
        """([selector, previous]) => {
            const image = document.querySelector(selector);
            return image && image.complete && image.naturalWidth > 0 &&
                image.getAttribute('src') !== previous;
        }""",
        arg=[f"#{elem_id} img", previous],
    )
    return image.get_attribute("src")


def pixels(page, elem_id: str) -> bytes:
    return page.locator(f"#{elem_id} img").first.screenshot()


def set_number(page, selector: str, value: float) -> None:
    box = page.locator(f"{selector} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


@pytest.mark.slow
def test_sample_interpolate_and_edit_in_chromium(page, tmp_path: Path):
    shots = tmp_path / "screenshots"
    # The page opens with faces from seed 0.
    first = shown(page, "samples")
    first_pixels = pixels(page, "samples")
    set_number(page, "#seed", 7)
    page.get_by_role("button", name="Sample", exact=True).click()
    second = shown(page, "samples", previous=first)
    assert pixels(page, "samples") != first_pixels  # another seed, other faces
    page.screenshot(path=shots / "sample.png", full_page=True)
    page.get_by_role("button", name="New faces").click()
    shown(page, "samples", previous=second)
    assert page.locator("#seed input[type=number]").first.input_value() != "7"

    page.get_by_role("tab", name="Interpolate").click()
    page.get_by_role("button", name="Interpolate", exact=True).click()
    for elem_id in ("mixed", "strip", "gif"):
        shown(page, elem_id)
    assert page.locator("#gif img").first.get_attribute("src").endswith(".gif")
    mixed = page.locator("#mixed img").first.get_attribute("src")
    middle = pixels(page, "mixed")
    set_number(page, "#seed-b", 11)
    page.get_by_role("button", name="Interpolate", exact=True).click()
    shown(page, "mixed", previous=mixed)
    assert pixels(page, "mixed") != middle
    page.screenshot(path=shots / "interpolate.png", full_page=True)

    page.get_by_role("tab", name="Edit").click()
    page.get_by_role("button", name="Edit", exact=True).click()
    before = shown(page, "edited")
    unedited = pixels(page, "edited")
    set_number(page, "#strength-Smiling", 2.5)
    page.get_by_role("button", name="Edit", exact=True).click()
    shown(page, "edited", previous=before)
    assert pixels(page, "edited") != unedited
    page.screenshot(path=shots / "edit.png", full_page=True)
    assert len(list(shots.glob("*.png"))) == 3


@pytest.mark.slow
def test_uploads_runs_and_bad_files_in_chromium(page, face_photos, tmp_path: Path):
    shots = tmp_path / "screenshots"
    page.get_by_role("tab", name="Reconstruct").click()
    page.locator("#recon-photo input[type=file]").set_input_files(str(face_photos[0]))
    page.get_by_text(
        "Find and align the face in uploaded photos", exact=False
    ).last.click()  # the synthetic photos are already CelebA-aligned crops
    page.get_by_role("button", name="Reconstruct", exact=True).click()
    shown(page, "reconstruction")
    page.screenshot(path=shots / "reconstruct.png", full_page=True)

    # A file that is not an image gets a message in the page, and the page keeps working.
    notes = tmp_path / "notes.png"
    notes.write_text("not a photo")
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-photo input[type=file]").set_input_files(str(notes))
    page.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_text("notes.png is not an image Pillow can read").wait_for()
    page.screenshot(path=shots / "bad-upload.png", full_page=True)

    # Switching to the GAN run: its page says it cannot reconstruct.
    page.locator("#run input").first.click()
    page.get_by_role("option", name="dcgan").click()
    page.get_by_text("Black_Hair (sd)").wait_for()  # the GAN's own attribute sliders
    page.get_by_role("tab", name="Reconstruct").click()
    page.get_by_text("is a GAN: it has no encoder").wait_for()
    page.screenshot(path=shots / "gan-run.png", full_page=True)
