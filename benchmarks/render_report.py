"""Open an HTML report in headless Chromium (the system's /usr/bin/chromium, driven by Playwright), check what a
reader would see, and save a full-page screenshot.

    python benchmarks/render_report.py benchmarks/RESULTS.html --png benchmarks/RESULTS.png

Prints JSON: the page's width against the window's (horizontal overflow), tables rendered, tables that scroll
sideways inside themselves (their first header shown), Markdown tables left inside <pre>, images that failed to
load. Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # no network here: background fetches only time out

PAGE_FACTS = """() => ({
  page_width: document.documentElement.scrollWidth,
  window_width: window.innerWidth,
  tables: document.querySelectorAll('table').length,
  scrolling_tables: [...document.querySelectorAll('table')].filter(t => t.scrollWidth > t.clientWidth + 1)
    .map(t => (t.querySelector('th') || t).textContent.trim().slice(0, 40)),
  tables_in_pre: [...document.querySelectorAll('pre')].filter(p => /\\|\\s*-{3,}/.test(p.textContent) || p.querySelector('table')).length,
  broken_images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src')),
  images: document.images.length,
})"""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def render(html_path: Path, png: Path | None = None, width: int = 1280) -> dict:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise SystemExit("error: no Chromium found; install it (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(html_path.resolve().as_uri())
            page.wait_for_load_state("load")
            facts = page.evaluate(PAGE_FACTS)
            if png is not None:
                page.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()
    facts["horizontal_overflow"] = facts["page_width"] > facts["window_width"]
    facts["ok"] = not (facts["horizontal_overflow"] or facts["scrolling_tables"] or facts["tables_in_pre"]
                       or facts["broken_images"])
    return facts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    if not args.html.is_file():
        print(f"error: {args.html} does not exist", file=sys.stderr)
        return 2
    facts = render(args.html, args.png, args.width)
    print(json.dumps(facts, indent=2))
    return 0 if facts["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
