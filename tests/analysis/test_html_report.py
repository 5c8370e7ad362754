"""The HTML report, opened in headless Chromium: it renders, loads every image, escapes, withholds blinded figures."""

import shutil

import pytest

import prunelab as pl
from prunelab.analysis import blind, report, unblind
from prunelab.cli import main
from prunelab.recipes import ModelState
from prunelab.studies import prune_responsibly as study

BROWSER = shutil.which("chromium") and shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(not BROWSER, reason="Chromium is not installed (apt-get install chromium "
                                                       "chromium-driver; CI installs them)")
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def tagged_study(tmp_path_factory):
    exp, _ = study.run(tmp_path_factory.mktemp("report") / "exp", study.StudyConfig.quick(), quiet=True)
    exp.add_tag(exp.graph.nodes[0], EVIL)
    return exp


@needs_browser
def test_the_report_opens_in_chromium_with_every_figure_and_no_errors(tagged_study, browser, tmp_path, capsys):
    assert main(["report", str(tagged_study.directory), "-o", str(tmp_path / "r.html")]) == 0
    assert capsys.readouterr().out.strip() == f"report: {tmp_path / 'r.html'}"
    browser.get((tmp_path / "r.html").as_uri())
    assert browser.save_screenshot(str(tmp_path / "report.png")) and (tmp_path / "report.png").stat().st_size > 10_000
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    images = browser.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
    # accuracy against sparsity, per-class change, the loss along each outcome's lineage (Train logs it), Pareto
    # front, regression coefficients, and the graph
    assert [alt for alt, _, _ in images] == ["figure"] * 2 + ["learning curve: loss"] + ["figure"] * 2 + [
        "experiment graph"]
    assert all(complete and width > 0 for _, complete, width in images)
    headings = browser.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    assert "Prune Responsibly regression" in headings and "Environment and how to reproduce" in headings
    text = browser.execute_script("return document.body.innerText")
    assert "reference_accuracy" in text and "exploratory" in text
    assert EVIL in text  # the tag shows as text ...
    assert browser.execute_script("return document.scripts.length") == 0  # ... and never runs


def test_the_report_holds_no_blinded_figure(tmp_path):
    exp = pl.Experiment(tmp_path / "exp", ModelState)
    study.build(exp, study.StudyConfig.quick())
    blind(exp, metrics=["evaluate.test*"], nodes=["outcome"])
    exp.run(quiet=True)
    page = report(exp).read_text()
    assert "Blinded until unblinding: evaluate.test*" in page and "is blinded" in page
    unblind(exp)
    truths = [n.results["evaluate"]["test_accuracy"] for n in exp.graph.nodes.filter("outcome")]
    assert not any(f"{t:.4g}" in page for t in truths)
    assert any(f"{t:.4g}" in report(exp).read_text() for t in truths)  # unblinded, they show


def test_a_preregistered_analysis_is_labelled_confirmatory(tmp_path):
    from prunelab.analysis import preregister

    exp = pl.Experiment(tmp_path / "exp", ModelState)
    study.build(exp, study.StudyConfig.quick())
    digest = preregister(exp, "classes", metrics=["evaluate.test"], nodes=["outcome"],
                         hypotheses=["structured pruning hurts rare classes most"])
    exp.run(quiet=True)
    page = report(exp).read_text()
    assert digest[:16] in page and "intact" in page and "structured pruning hurts rare classes most" in page
    assert "<span class='label confirmatory'>confirmatory</span>" in page
