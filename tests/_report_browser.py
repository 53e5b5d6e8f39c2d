"""A report checked in headless Chromium the way a reader sees it: every picture decodes and is
not blank (all white), the page is no wider than the window (no table pushed it sideways), and a
screenshot of it is not blank. Shared by the report tests of every kind."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

WINDOW = (1280, 1600)
#: A picture is blank when fewer than this share of its pixels differ from white.
INK_SHARE = 0.002


def find_browser() -> str | None:
    candidates = [os.environ.get("FREQXFR_CHROMIUM"), "chromium", "chromium-browser",
                  "google-chrome", "google-chrome-stable"]  # fmt: skip
    for name in candidates:
        if name and (found := shutil.which(name)):
            return found
    return None


def browser_or_skip() -> str:
    found = find_browser()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no chromium binary found, and CI must run the browser tests")
        pytest.skip("no chromium binary found (apt-get install chromium, or set FREQXFR_CHROMIUM)")
    return found


def _run(browser: str, profile: Path, *args: str) -> str:
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", *args],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def blank(picture: Image.Image) -> bool:
    """Whether a picture is (nearly) all white: no plot, no face, nothing drawn."""
    pixels = np.asarray(picture.convert("RGB")).astype(int)
    return float(np.mean((pixels < 245).any(axis=-1))) < INK_SHARE


def _pictures(page: Path) -> list[tuple[str, bytes]]:
    """Each ``<img>`` of a report as (its alt text, its bytes): data URIs decoded, links read."""
    text = page.read_text(encoding="utf-8")
    out = []
    for src, alt in re.findall(r'<img src="([^"]+)" alt="([^"]*)"', text):
        if src.startswith("data:"):
            out.append((alt, base64.b64decode(src.split(",", 1)[1])))
        else:
            out.append((alt, (page.parent / src).read_bytes()))
    return out


def report_problems(browser: str, page: Path, work: Path) -> list[str]:
    """What a reader would see wrong with ``page`` in Chromium (an empty list when nothing)."""
    problems = []
    dom = _run(browser, work / "profile", "--dump-dom", page.as_uri())
    body = re.search(r"<body[^>]*>", dom)
    if body is None:
        return [f"{page.name}: no <body> in the rendered DOM"]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(0)))
    if attrs.get("broken-images") != "0":
        problems.append(f"{page.name}: {attrs.get('broken-images')} pictures did not decode")
    width, window = int(attrs.get("page-width", 0)), int(attrs.get("viewport-width", 0))
    if not window or width > window:
        problems.append(f"{page.name}: the page is {width} px wide in a {window} px window")
    for alt, data in _pictures(page):
        with Image.open(io.BytesIO(data)) as picture:
            if blank(picture):
                problems.append(f"{page.name}: picture {alt} is blank (all white)")
    shot = work / f"{page.parent.name}-{page.stem}-shot.png"
    _run(browser, work / "profile", f"--screenshot={shot}", page.as_uri())
    with Image.open(shot) as picture:
        if picture.size != WINDOW or blank(picture):
            problems.append(f"{page.name}: the screenshot is blank or {picture.size}")
    return problems
