"""The report in a real browser: Debian's Chromium, headless, driven by Playwright. Every
picture must load from the page itself (no network), and the comparison table must show."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.viz.test_report import copy_runs, write_metrics

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (containers and root have none to give), no GPU, and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
METRICS = {
    "ae": [("fid", 180.2, None), ("kid", 0.152, 0.011), ("recon_mse", 0.021, None),
           ("psnr", 22.8, None), ("ssim", 0.71, None), ("recon_fid", 95.4, None)],
    "vae": [("fid", 150.7, None), ("kid", 0.121, 0.009), ("recon_mse", 0.034, None),
            ("psnr", 20.9, None), ("ssim", 0.64, None), ("recon_fid", 120.3, None),
            ("precision", 0.41, None), ("recall", 0.22, None)],
    "dcgan": [("fid", 140.1, None), ("kid", 0.117, 0.010), ("precision", 0.52, None),
              ("recall", 0.08, None), ("memorization", 11.3, None)],
}  # fmt: skip


@pytest.mark.slow
def test_report_renders_in_chromium(runs32, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install -e '.[dev]'"
    )
    from facegen.viz.report_html import build_report

    runs = copy_runs(runs32, tmp_path / "runs")
    for name, metrics in METRICS.items():
        write_metrics(runs[name], [
            {"metric": metric, "value": value, **({"std": std} if std else {})}
            for metric, value, std in metrics
        ])  # fmt: skip
    out = build_report(list(runs.values()), tmp_path / "report.html", title="facegen demo")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            fetched = []  # anything but the page itself and its data: URIs is a leak
            page.on(
                "request",
                lambda request: (
                    fetched.append(request.url)
                    if not request.url.startswith(("file:", "data:"))
                    else None
                ),
            )
            page.goto(out.as_uri(), wait_until="load")
            loaded = page.evaluate(
                "() => Array.from(document.images, i => i.complete && i.naturalWidth > 0)"
            )
            names = page.locator("#comparison tbody tr td:first-child").all_inner_texts()
            best = page.locator("#comparison td.best").count()
            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert len(loaded) == 8 and all(loaded)
    assert names == ["ae", "vae", "dcgan"]
    assert best > 0 and fetched == []
    print(f"screenshot: {screenshot}")
