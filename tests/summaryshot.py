"""The check-run summary of a real blocked ingest, as GitHub would show it.

Builds a cases repo with real ingests (a target branch case, then two scans of a pull request
40 days apart), takes the Markdown the check run carries (`ingest --output markdown`), renders
it with markdown-it-py and a GitHub-like stylesheet inline, and can save a screenshot of it
from Debian's headless chromium. `python tests/summaryshot.py docs/check-summary.png`
regenerates the picture in the README.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

from markdown_it import MarkdownIt

from conftest import TRIVY, git, run_cli

T0 = "2026-10-01T09:00:00Z"
T40 = "2026-11-10T09:00:00Z"
WEB = "https://github.com/acme/security-cases"
POLICY = """version: 1
mode: pr_gate
rules:
  - id: no-new-high
    when: {event: pull_request, target_branches: [main]}
    block: {severity_at_least: HIGH, new_only: true}
  - id: fix-within-sla
    block: {sla_breached: true}
  - id: no-critical
    block: {severity_at_least: CRITICAL}
exceptions:
  - id: EXC-12
    match: {advisory: CVE-2020-28724, package: Werkzeug}
    reason: the debugger is never enabled in production
    approved_by: "@acme/security"
    expires: 2026-11-17
sla_days: {CRITICAL: 7, HIGH: 30, MEDIUM: 90, LOW: 180}
"""
PR = ("--repo", "acme/shop", "--pr", "42", "--branch", "bump-deps", "--target-branch", "main")

STYLE = """
body { font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif;
  color: #1f2328; background: #fff; margin: 0; }
main { max-width: 1012px; margin: 24px auto; padding: 16px 24px; border: 1px solid #d1d9e0;
  border-radius: 6px; }
h3 { font-size: 1.25em; font-weight: 600; margin: 8px 0 16px; }
a { color: #0969da; text-decoration: none; }
code { font: 85% ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: rgba(129, 139, 152, .12); border-radius: 6px; padding: .2em .4em; }
table { border-collapse: collapse; margin: 0 0 16px; display: block; overflow: auto; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
th { font-weight: 600; }
tr:nth-child(2n) { background: #f6f8fa; }
ul { padding-left: 2em; }
details summary { cursor: pointer; }
"""


def blocked_summary(work: Path) -> str:
    """The Markdown summary of a real blocked pull-request ingest."""
    cases = work / "security-cases"
    cases.mkdir()
    git(cases, "init", "--quiet", "--initial-branch", "main")
    (cases / "policy.yaml").write_text(POLICY)
    git(cases, "add", "policy.yaml")
    git(cases, "-c", "user.name=sec", "-c", "user.email=sec@example.com", "commit", "-qm", "policy")

    def ingest(now: str, *args: str | Path) -> str:
        proc = run_cli(
            "ingest",
            *args,
            "--cases-repo",
            cases,
            "--cases-web-url",
            WEB,
            "--output",
            "markdown",
            cwd=work,
            SECURECASE_NOW=now,
        )
        assert proc.returncode in (0, 1), proc.stderr
        return proc.stdout

    ingest(T0, TRIVY / "debian-buster.json", "--source", "image", "--repo", "acme/shop",
           "--branch", "main", "--commit", "a" * 40)  # fmt: skip
    ingest(T0, TRIVY / "pip.json", "--source", "python-deps", *PR, "--commit", "b" * 40)
    return ingest(
        T40,
        TRIVY / "pip.json",
        TRIVY / "fluentd-gems.json",
        *("--source", "python-deps", "--source", "image"),
        *PR,
        "--commit",
        "c" * 40,
    )


def to_html(markdown: str) -> str:
    """A standalone page: the summary as GitHub renders Markdown (tables, inline HTML)."""
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape('securecase check run')}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def main(target: Path) -> None:
    """Render the summary and save a screenshot of it to ``target``."""
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        page = work / "summary.html"
        page.write_text(to_html(blocked_summary(work)))
        options = webdriver.ChromeOptions()
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1100,900",
                     "--hide-scrollbars", f"--user-data-dir={work / 'profile'}"):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(
            service=Service(executable_path="/usr/bin/chromedriver"), options=options
        )
        try:
            driver.get(page.as_uri())
            height = int(driver.execute_script("return document.body.scrollHeight"))
            # The whole page in one picture, whatever the window's size.
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": 1100, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            driver.save_screenshot(str(target))
        finally:
            driver.quit()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
