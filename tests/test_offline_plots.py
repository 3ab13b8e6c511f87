"""`dvc plots show` and `dvc plots diff` draw every plot offline: vendor/vega/dvc_plots.html inlines vega,
vega-lite and vega-embed (scripts/vendor_vega.py), and .dvc/config makes it the project's template."""

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.browser import vega_charts
from tests.conftest import REPO

TEMPLATE = REPO / "vendor" / "vega" / "dvc_plots.html"


def test_the_project_template_inlines_the_pinned_libraries_and_loads_nothing():
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    assert (REPO / ".dvc" / config["plots"]["html_template"]).resolve() == TEMPLATE
    page = TEMPLATE.read_text()
    assert "{plot_divs}" in page
    assert "{scripts}" not in page  # where DVC would put its CDN <script src=...> tags
    assert not re.search(r"<script[^>]*\bsrc=", page) and "<link" not in page
    from scripts.vendor_vega import PINNED

    for package, version, member, _ in PINNED:
        assert f"<script>/* {package}@{version} {member} */" in page
    assert page.index("/* vega@") < page.index("/* vega-lite@") < page.index("/* vega-embed@")  # each needs the one before


def plots_project(tmp_path: Path) -> Path:
    """A git repository with this one's dvc.yaml, DVC config, templates and committed plots (no pipeline run)."""
    copy = tmp_path / "repo"
    for item in ("dvc.yaml", "params.yaml", ".dvc/config", ".dvc/plots", "vendor/vega", "plots"):
        src, dst = REPO / item, copy / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "plots"]):
        subprocess.run(cmd, cwd=copy, check=True)
    return copy


def dvc(args: list[str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def drawn(browser, page: Path, screenshot: Path) -> dict[str, int]:
    """Open ``page`` from file://, wait until every vega chart drew, check nothing went to the network."""
    browser.open(page.as_uri())
    probe = vega_charts(browser)
    counts = browser.wait_for(
        "const e = document.querySelectorAll('.vega-embed'); const d = document.querySelectorAll("
        "'.vega-embed canvas, .vega-embed svg.marks'); return e.length > 0 && d.length === e.length && e.length",
        what="every .vega-embed holding a canvas or SVG",
    )
    assert counts == probe()["embeds"]
    images = browser.driver.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    assert all(images), images
    browser.screenshot(screenshot)
    assert browser.stray_requests() == [] and browser.failed_requests() == []
    return probe()


def test_dvc_plots_show_and_diff_draw_every_chart_offline(browser, tmp_path):
    repo = plots_project(tmp_path)
    definitions = yaml.safe_load((repo / "dvc.yaml").read_text())
    csv_plots = [p for stage in definitions["stages"].values() for entry in stage.get("plots", []) for p in entry
                 if p.endswith(".csv")] + [p for entry in definitions["plots"] for p in entry]  # fmt: skip

    dvc(["plots", "show", "-o", str(tmp_path / "show")], repo)
    page = (tmp_path / "show" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and "<script>/* vega@" in page
    shown = drawn(browser, tmp_path / "show" / "index.html", tmp_path / "plots_show.png")
    assert shown["embeds"] == len(csv_plots)  # one chart per CSV plot of dvc.yaml, each drawn

    snr = repo / "plots" / "snr_gnsdr.csv"
    snr.write_text(snr.read_text().replace("\n-5.0,", "\n-6.0,"))  # a workspace change: diff draws both revisions
    dvc(["plots", "diff", "HEAD", "-o", str(tmp_path / "diff")], repo)
    diffed = drawn(browser, tmp_path / "diff" / "index.html", tmp_path / "plots_diff.png")
    assert diffed["embeds"] == len(csv_plots)
