"""The check-run summary of a real blocked ingest, rendered as GitHub would and opened in
Debian's headless chromium: the headline and the one table are there, with the facts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from summaryshot import WEB, blocked_summary, to_html

CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def markdown(tmp_path_factory: pytest.TempPathFactory) -> str:
    return blocked_summary(tmp_path_factory.mktemp("summary"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    yield driver
    driver.quit()


def test_the_headline_names_the_causes(markdown: str) -> None:
    first = markdown.splitlines()[0]
    # Trivy's own scan time (2021-08-25) dates the findings: the CRITICAL already on main is
    # long past its 7-day SLA; the two HIGH are new in this pull request (new counts first).
    assert first == "### securecase: BLOCK — 2 new HIGH, 1 finding past SLA"
    assert f"request an exception in [`policy.yaml`]({WEB}/blob/" in markdown
    assert "- Warning: exception EXC-12 expires on 2026-11-17" in markdown


def test_the_rendered_summary_shows_headline_table_and_folded_counts(
    markdown: str, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    page = tmp_path / "summary.html"
    page.write_text(to_html(markdown))
    browser.get(page.as_uri())
    headline = browser.find_element(By.TAG_NAME, "h3").text
    assert headline == "securecase: BLOCK — 2 new HIGH, 1 finding past SLA"
    [table, *_] = browser.find_elements(By.TAG_NAME, "table")
    header = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert header == ["severity", "advisory", "package → fixed in, or location", "policy rule",
                      "new?"]  # fmt: skip
    rows = {
        tr.find_elements(By.TAG_NAME, "td")[1].text: [
            td.text for td in tr.find_elements(By.TAG_NAME, "td")
        ]
        for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    assert set(rows) == {"CVE-2019-14806", "CVE-2020-8165", "CVE-2019-18224"}
    assert rows["CVE-2019-14806"][2] == "Werkzeug 0.11 → 0.15.3"
    old = "fix-within-sla (1902 days old, past SLA)"
    assert rows["CVE-2019-14806"][3:] == [f"no-new-high, {old}", "new in this PR"]
    assert rows["CVE-2020-8165"][3:] == [f"no-new-high, {old}", "new in this PR"]
    assert rows["CVE-2019-18224"][2:] == [
        "libidn2-0 2.0.5-1 → 2.0.5-1+deb10u1",
        f"{old}, no-critical",
        "on the target branch",
    ]
    link = table.find_element(By.LINK_TEXT, "CVE-2019-14806")
    assert link.get_attribute("href") == "https://nvd.nist.gov/vuln/detail/CVE-2019-14806"
    # The counts are folded away: present, not shown until opened.
    details = browser.find_element(By.TAG_NAME, "details")
    assert details.get_attribute("open") is None
    assert not details.find_elements(By.TAG_NAME, "table")[0].is_displayed()
