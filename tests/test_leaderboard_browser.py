"""The built site (mini runs; a real benchmark's page) in a real headless Chromium (Debian's,
driven by its own chromedriver; no browser is downloaded). Served over http on 127.0.0.1 only.

Without Chromium the tests skip with the reason, except under ``CI=true``, where a missing
browser is a failure: ``make test`` installs it (the Makefile's ``browser`` step).
"""

from __future__ import annotations

import functools
import http.server
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from leaderboard.site import BuildResult, build_site
from leaderboard_real_support import egotempo_fixture_bundles
from leaderboard_support import HOSTILE

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)
SCREENSHOTS = Path(__file__).parent.parent / "build" / "screenshots"


def _unavailable() -> str | None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return f"{CHROMIUM} and {CHROMEDRIVER} are needed (Debian: apt-get install chromium chromium-driver; `make browser`)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def site_url(leaderboard_site: BuildResult) -> Iterator[str]:
    """The site served over http on an ephemeral loopback port, for the module's tests."""
    handler = functools.partial(_QuietHandler, directory=str(leaderboard_site.site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def make_browser() -> Iterator[Callable[..., Any]]:
    """Starts Chromium sessions (JavaScript on or off) and quits them after the module."""
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def start(*, javascript: bool = True) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        if not javascript:
            options.add_experimental_option(
                "prefs", {"profile.managed_default_content_settings.javascript": 2}
            )
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        drivers.append(driver)
        return driver

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
        yield start
    for driver in drivers:
        driver.quit()


@pytest.fixture(scope="module")
def browser(make_browser: Callable[..., Any]) -> Any:
    return make_browser()


def _rows(driver: Any, group: str = "") -> list[Any]:
    """The main table's entry rows (not the group headings), of one group if named."""
    where = f"[data-group='{group}']" if group else ""
    return driver.find_elements("css selector", f"#leaderboard tbody{where} tr[data-track]")


def _visible_policies(driver: Any, group: str = "") -> list[str]:
    return [
        row.find_element("css selector", "td.policy").get_attribute("data-value")
        for row in _rows(driver, group)
        if row.is_displayed()
    ]


GROUPS = ("ranked", "partial", "controls")


def _open(driver: Any, url: str) -> None:
    """Load ``url`` with an empty console log, so that what the page logs while loading (an
    error thrown by the script, a blocked resource) is what the next ``get_log`` returns."""
    driver.get_log("browser")
    driver.get(url)


def test_table_renders_every_accepted_run(browser: Any, site_url: str, leaderboard_site: BuildResult) -> None:
    _open(browser, site_url + "index.html")
    links = {a.get_attribute("href").split("/runs/")[1].split("/")[0]
             for a in browser.find_elements("css selector", "#leaderboard a[href^='runs/']")}
    assert links == {run.run_id for run in leaderboard_site.accepted}
    assert len(_rows(browser)) == len(leaderboard_site.accepted)  # one configuration per run here
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "leaderboard.png"))
    assert (SCREENSHOTS / "leaderboard.png").stat().st_size > 10_000


def test_sorting_by_a_column_reorders_rows_within_each_group(browser: Any, site_url: str) -> None:
    """Sorting never moves a control or a partial run into the ranking."""
    _open(browser, site_url + "index.html")
    default = {g: _visible_policies(browser, g) for g in GROUPS}
    header = browser.find_element("css selector", "th[data-col='0'] button")  # Policy
    header.click()
    ascending = {g: _visible_policies(browser, g) for g in GROUPS}
    assert ascending == {g: sorted(names, key=str.lower) for g, names in default.items()}
    assert ascending != default
    header.click()
    assert {g: _visible_policies(browser, g) for g in GROUPS} == {g: n[::-1] for g, n in ascending.items()}
    before = _visible_policies(browser)
    browser.find_element("css selector", "th[data-col='10'] button").click()  # mini Mem/h
    for group in GROUPS:
        cells = [row.find_elements("css selector", "td")[10].get_attribute("data-value")
                 for row in _rows(browser, group)]
        assert [float(c) for c in cells] == sorted((float(c) for c in cells), reverse=True)
    assert _visible_policies(browser) != before  # the click sorted, not an order that happened to fit


def test_filters_hide_rows(browser: Any, site_url: str) -> None:
    _open(browser, site_url + "index.html")
    box = browser.find_element("id", "filter")
    box.send_keys("oracle")
    assert _visible_policies(browser) == ["oracle"]
    assert browser.find_element("id", "shown").text == f"1 of {len(_rows(browser))} shown"
    heads = {g: browser.find_element("css selector", f"tbody[data-group='{g}'] tr.group-head")
             for g in GROUPS}
    assert [g for g, head in heads.items() if head.is_displayed()] == ["controls"]
    box.clear()
    box.send_keys(" ")  # clear() fires no input event; a space matches everything
    browser.find_element("css selector", "input[name=track][value=control]").click()
    visible = _visible_policies(browser)
    assert "oracle" not in visible and "blind" not in visible and len(visible) == 5
    assert not heads["controls"].is_displayed() and heads["ranked"].is_displayed()
    from selenium.webdriver.support.select import Select

    Select(browser.find_element("id", "side")).select_by_value("none")
    assert _visible_policies(browser) == ["leaderboard_support:KeepSpeech"]
    row = next(r for r in _rows(browser) if r.is_displayed())
    assert row.get_attribute("data-side") == "none"
    assert not _severe(browser)


def test_pages_log_no_console_errors(browser: Any, site_url: str, leaderboard_site: BuildResult) -> None:
    pages = ["index.html", "about.html", "benchmarks/mini.html"]
    pages += [f"runs/{run.run_id}/index.html" for run in leaderboard_site.accepted]
    for page in pages:
        _open(browser, site_url + page)
        browser.execute_script("console.log('loaded')")
        assert not _severe(browser), page


def _severe(driver: Any) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_markup_in_a_bundle_shows_as_text(browser: Any, site_url: str, leaderboard_site: BuildResult) -> None:
    hostile = next(run for run in leaderboard_site.accepted if run.policy == HOSTILE)
    for page in ("index.html", f"runs/{hostile.run_id}/index.html", "benchmarks/mini.html"):
        _open(browser, site_url + page)
        assert browser.execute_script("return window.__xss") is None, page
        sources = browser.execute_script("return Array.from(document.scripts, s => s.src)")
        assert len(sources) == 1 and sources[0].endswith("/static/leaderboard.js"), page
        assert not browser.find_elements("css selector", "main img"), page
        assert "<script>window.__xss = 1</script>" in browser.find_element("tag name", "main").text, page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "benchmark-mini.png"))


def test_page_without_javascript_still_shows_the_table(
    make_browser: Callable[..., Any], site_url: str, leaderboard_site: BuildResult
) -> None:
    driver = make_browser(javascript=False)
    driver.get(site_url + "index.html")
    assert not driver.find_element("id", "controls").is_displayed()  # JS would have shown them
    assert not driver.find_elements("css selector", "th button")
    rows = _rows(driver)
    assert len(rows) == len(leaderboard_site.accepted) and all(row.is_displayed() for row in rows)
    # server-side default: the ranking (the one full run of a memory policy) first, then the
    # runs of 2 videos, then the controls, each group by best mean Acc
    tracks = [row.get_attribute("data-track") for row in rows]
    assert _visible_policies(driver, "ranked") == ["my_policies:Heard"]
    assert tracks[-3:] == ["control"] * 3 and "control" not in tracks[:-3]  # 2 blind, 1 oracle
    heads = driver.find_elements("css selector", "#leaderboard tr.group-head th")
    assert [h.text.split(":")[0] for h in heads] == ["Ranking", "Runs of part of a benchmark", "Controls"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / "leaderboard-no-js.png"))


# ------------------------------------------------------------------ a real benchmark


@pytest.fixture(scope="module")
def real_site(tmp_path_factory: pytest.TempPathFactory, mini_cache: Path,
              tiny_text_model: Path) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("real-site")
    egotempo_fixture_bundles(folder / "results", tiny_text_model)
    site = build_site(folder / "results", folder / "site").site
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()


def test_a_real_benchmark_page_shows_its_figures_and_the_papers_numbers(
    make_browser: Callable[..., Any], real_site: str
) -> None:
    browser = make_browser()
    browser.get_log("browser")
    browser.get(real_site + "index.html")
    browser.find_element("link text", "egotempo_stream").click()
    assert browser.current_url.endswith("benchmarks/egotempo_stream.html")
    headings = [h.text for h in browser.find_elements("css selector", "h2")]
    assert "Judged accuracy by question type" in headings
    figures = browser.find_element("css selector", "table.figures")
    assert figures.is_displayed()
    assert {row.find_element("css selector", "td.policy").text.split(" · ")[0]
            for row in figures.find_elements("css selector", "tbody tr")} == {"blind", "subtitles"}
    assert "(transformers)" in figures.text  # the judge's model identity
    reference = browser.find_element("css selector", "section.published")
    assert reference.is_displayed() and "not re-scored" in reference.text
    assert "TaskMem" in reference.find_element("css selector", "table.reference").text
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "benchmark-egotempo.png"))
