#!/usr/bin/env python3
"""Render a report HTML page in headless Chromium and save a PNG, to look at it as a reader would.

Install once (Debian/Ubuntu; not part of ``make test``)::

    apt-get update && apt-get install -y chromium fonts-noto-cjk

Then, for the newest run::

    .venv/bin/python scripts/screenshot_report.py reports/latest/guangxi.html \
        --out reports/latest/guangxi.png --height 6000

which runs (a fresh profile in a temporary folder, nothing fetched from the network)::

    chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir=/tmp/<fresh> --hide-scrollbars --window-size=1280,6000 \
        --screenshot=reports/latest/guangxi.png file:///abs/path/reports/latest/guangxi.html

Check in the PNG that the charts show, Chinese text renders (no boxes), and tables are legible.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str:
    """The first Chromium-family executable on PATH."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(
        "no Chromium found on PATH; install it with "
        "`apt-get update && apt-get install -y chromium fonts-noto-cjk`"
    )


def screenshot(html: Path, out: Path, width: int = 1280, height: int = 6000,
               timeout: float = 120.0) -> Path:
    """Render ``html`` to ``out`` (PNG) with headless Chromium; returns ``out``."""
    html = html.resolve()
    if not html.exists():
        raise SystemExit(f"{html} does not exist")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [
            find_browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            html.as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the report HTML file")
    parser.add_argument("--out", type=Path, help="PNG path (default: next to the HTML)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=6000)
    args = parser.parse_args(argv)
    out = args.out or args.html.with_suffix(".png")
    print(screenshot(args.html, out, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
