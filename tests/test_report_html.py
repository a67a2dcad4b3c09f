"""report.html, opened in a real browser (headless Chromium): it renders, logs no console
error, loads nothing but its embedded images, is not blank, and its tables hold the numbers
of metrics.json. The hardest-images ranking (zoo.pipeline.failures) is checked on known cases."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from flat_options import compare_options, run_options
import toy_backend
from toy_backend import make_dataset

from zoo.pipeline.failures import image_failure, worst_images
from zoo.predictions import Detection, InstancePredictions
from zoo.metrics import fmt_ci
from zoo.pipeline.run import execute
from zoo.tasks import get_task

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium; .ci/run does)")


def browse(page: Path, tmp_path: Path, *extra: str) -> tuple[str, list[str]]:
    """Chromium headless on a file: (its stdout, the console messages it logged)."""
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=1", *extra, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


class Tables(HTMLParser):
    """The text of every table cell, by the table's class: {class: [[cell, ...], ...]}."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.sources: list[str] = []
        self.current = None
        self.cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key):
                self.sources.append(a[key])
        if tag == "table":
            self.current = self.tables.setdefault(a.get("class") or "", [])
        elif tag == "tr" and self.current is not None:
            self.current.append([])
        elif tag in ("td", "th") and self.current is not None:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.current[-1].append(self.cell)
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    data = make_dataset(root / "data", n=12)
    result = execute(run_options(task="detect", backend="toy", registry=toy_backend.registry(), quiet=True,
                                 dataset=data, flags={"device": "cpu"}, out=root / "runs"))
    return result.run_dir


def test_run_folder_gets_report_html_and_samples(toy_run):
    assert (toy_run / "plots" / "samples.png").is_file()
    page = (toy_run / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2  # the failures and the PR curve
    assert "Content-Security-Policy" in page and "http://" not in page and "https://" not in page
    assert "plots/samples.png" in (toy_run / "report.md").read_text()


@needs_chromium
def test_run_report_in_a_browser(toy_run, tmp_path):
    page = toy_run / "report.html"
    dom, console = browse(page, tmp_path, "--dump-dom")
    assert console == []
    parsed = Tables()
    parsed.feed(dom)
    assert parsed.sources and all(s.startswith("data:image/png;base64,") for s in parsed.sources)
    metrics = json.loads((toy_run / "metrics.json").read_text())
    scores = {row[0]: row[1] for row in parsed.tables["scores"][1:]}
    assert list(scores) == list(get_task(metrics["task"]).metrics_schema.scores_of(metrics))
    for k in scores:
        assert scores[k] == fmt_ci(metrics, k)
    per_class = parsed.tables["per-class"]
    header = per_class[0]
    for row in per_class[1:]:
        expected = metrics["per_class"][row[0]]
        for col, cell in zip(header[1:], row[1:]):
            v = expected[col]
            assert cell == (f"{v:.3f}" if isinstance(v, float) else str(v))
    assert parsed.tables["failures"][1][1].endswith("miss(es)")  # the mean box misses

    shot = tmp_path / "shot.png"
    browse(page, tmp_path, "--screenshot=" + str(shot), "--window-size=1000,1400")
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1400, 1000) and pixels.std() > 20  # text, tables and pictures, not blank


@needs_chromium
def test_the_browser_check_sees_a_page_that_fetches(tmp_path):
    """The control: the same policy on a page that loads a URL logs a console error."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
                   "content=\"default-src 'none'; img-src data:\"></head>"
                   '<body><img src="http://127.0.0.1:9/x.png"></body></html>')
    _, console = browse(bad, tmp_path, "--dump-dom")
    assert any("Content Security Policy" in line for line in console)


@needs_chromium
def test_compare_report_in_a_browser(tmp_path, tiny_demo):
    from zoo.pipeline.compare import compare

    result = compare(compare_options(task="detect", backends=["toy", "oracle"], registry=toy_backend.registry(),
                                     data=tiny_demo, flags={"device": "cpu"}, out=tmp_path / "runs"))
    dom, console = browse(result.folder / "report.html", tmp_path, "--dump-dom")
    assert console == []
    parsed = Tables()
    parsed.feed(dom)
    board = parsed.tables["leaderboard"]
    by_backend = {row[1].removesuffix(" ≈"): row for row in board[1:]}
    ap = board[0].index("AP")
    for r in result.rows:
        assert by_backend[r.backend][ap] == fmt_ci(r.metrics, "AP")
    failures = parsed.tables["failures"]
    assert failures[0] == ["image", "oracle", "toy"]  # every backend on the same hard images, in rank order
    assert len(failures) > 1
    assert all(row[1] == "no mistake" for row in failures[1:]), failures  # the oracle is right


def test_failure_score_counts_false_positives_and_misses(tiny_demo):
    from zoo.data.reading import read_dataset

    ds = read_dataset(tiny_demo, "auto", None)
    task, meta = get_task("detect"), ds.meta()
    rec = next(r for r in ds.images if len(r.instances) >= 2)
    truth = [i for i in rec.instances if not i.ignore]
    perfect = InstancePredictions(rec.id, [Detection(i.category, 0.9, i.bbox) for i in truth])
    assert image_failure(task, rec, perfect, meta).score == 0
    # drop one object, add one box far from everything, and one below the score cut
    x0, y0, x1, y1 = truth[0].bbox
    wrong = InstancePredictions(rec.id, [Detection(i.category, 0.9, i.bbox) for i in truth[1:]]
                                + [Detection(truth[0].category, 0.9, (x0 + 1000, y0, x1 + 1000, y1)),
                                   Detection(truth[0].category, 0.1, (x0 + 500, y0, x1 + 500, y1))])
    fail = image_failure(task, rec, wrong, meta)
    assert (len(fail.false_positives), len(fail.misses), fail.score) == (1, 1, 2.0)
    assert fail.misses == [tuple(truth[0].bbox)]
    other = next(r for r in ds.images if r.id != rec.id)
    ranked = worst_images(task, ds.subset([rec.id, other.id]), [{rec.id: wrong, other.id: None}], n=5)
    # no prediction at all misses every object of the other image
    n_other = sum(not i.ignore for i in other.instances)
    assert [(r.id, s) for r, s in ranked] == sorted([(rec.id, 2.0), (other.id, float(n_other))],
                                                   key=lambda t: (-t[1], t[0]))
