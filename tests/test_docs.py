"""The documentation: the site builds with warnings as errors, and its pages open in a real headless
browser with no console errors (home, the API page of glore.nn.GloRe, the blocks page with rendered
equations). Screenshots go to results/docs-screenshots/."""

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "results" / "docs-screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

pytestmark = pytest.mark.xdist_group("docs")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from sphinx.cmd.build import build_main

    out = tmp_path_factory.mktemp("site")
    status = build_main(["-W", "--keep-going", "-q", "-b", "html", str(REPO / "docs"), str(out)])
    assert status == 0, "the documentation build reported warnings (run `make docs`)"
    return out


def test_site_builds_every_page(site):
    for page in ("index", "getting-started", "blocks", "generated/zoo", "reference/cli", "reference/api",
                 "benchmarks", "architecture", "design-notes", "changelog"):
        assert (site / f"{page}.html").is_file(), page
    api = (site / "reference" / "api.html").read_text(encoding="utf-8")
    assert 'id="glore.nn.GloRe"' in api                       # autodoc reached the unit
    cli = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    assert "--checkpoint" in cli and "summary" in cli          # argparse reached the subcommands
    assert "cdn." not in (site / "blocks.html").read_text(encoding="utf-8")


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def test_pages_open_in_a_headless_browser_without_console_errors(site):
    executable = _browser()
    if executable is None:
        pytest.skip(f"no Chromium on this machine (looked for {', '.join(BROWSERS)}); "
                    "`apt-get install chromium` installs it")
    playwright = pytest.importorskip("playwright.sync_api")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))

        page.goto((site / "index.html").as_uri(), wait_until="load")
        assert "glore" in page.title()
        page.screenshot(path=str(SCREENSHOTS / "home.png"))

        page.goto((site / "reference" / "api.html").as_uri() + "#glore.nn.GloRe", wait_until="load")
        assert page.locator("[id='glore.nn.GloRe']").count() == 1
        page.screenshot(path=str(SCREENSHOTS / "api-glore.png"))

        page.goto((site / "blocks.html").as_uri(), wait_until="load")
        page.wait_for_selector("mjx-container svg", timeout=20_000)   # MathJax typeset the equations
        assert page.locator("mjx-container").count() >= 3
        page.screenshot(path=str(SCREENSHOTS / "blocks-math.png"), full_page=False)
        browser.close()
    assert errors == []
