"""The dashboard in a real headless browser (Debian's chromium + chromedriver, via selenium),
opened from file:// with the network switched off."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from conftest import ROOT, run_cli
from reportrepo import NOW, build, stamp

CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("dashboard")
    build(work)
    proc = run_cli("report", "--html", "site", cwd=work, SECURECASE_NOW=stamp(NOW))
    assert proc.returncode == 0, proc.stderr
    return work / "site" / "index.html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    # Offline: any attempt of the page to reach the network fails.
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    yield driver
    driver.quit()


def visible_case_rows(browser: webdriver.Chrome) -> list[str]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#cases tbody tr")
    return [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows if r.is_displayed()]


def test_dashboard_offline_headline_and_filter(
    page: Path, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(page.as_uri())
    assert browser.title == "Security posture"

    def tile(name: str) -> str:
        return browser.find_element(By.CSS_SELECTOR, f"#{name} .value").text

    assert tile("open-cases") == "4"
    assert tile("open-high") == "1"
    assert tile("mtta") == "5"
    assert tile("sla-overdue") == "1"
    assert tile("gate") == "1 / 3"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".charts svg")) == 3
    assert len(visible_case_rows(browser)) == 4
    exposure = browser.find_elements(By.CSS_SELECTOR, "#exposure tbody tr")
    assert exposure[0].text.split() == ["CVE-2020-28724", "Werkzeug", "2", "2"]
    # The script ran from the page itself, offline: filtering hides rows.
    browser.find_element(By.ID, "case-filter").send_keys("acme/shop")
    assert visible_case_rows(browser) == [
        "github::acme::shop::PR::42",
        "github::acme::shop::PR::43",
    ]
    browser.find_element(By.ID, "case-filter").send_keys(" ::43")
    assert visible_case_rows(browser) == ["github::acme::shop::PR::43"]
    # Sorting: a second click on the case heading sorts by key, descending.
    heading = browser.find_elements(By.CSS_SELECTOR, "#cases thead th")[0]
    browser.find_element(By.ID, "case-filter").clear()
    browser.execute_script(
        "var f = document.getElementById('case-filter'); f.dispatchEvent(new Event('input'));"
    )
    heading.click()
    heading.click()
    keys = visible_case_rows(browser)
    assert keys == sorted(keys, reverse=True) and len(keys) == 4
    heading.click()
    # SECURECASE_DASHBOARD_SHOT=docs/report-dashboard.png refreshes the README's picture.
    shot = Path(os.environ.get("SECURECASE_DASHBOARD_SHOT") or tmp_path / "dashboard.png")
    browser.save_screenshot(str(ROOT / shot))
    assert (ROOT / shot).stat().st_size > 10_000
