"""CI runs every test it has: what would skip on a laptop fails under CI=true."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

A_BROWSER_TEST = """
import tests.browser
from tests.browser import browser, needs_browser  # noqa: F401

tests.browser.CHROMIUM = "/nonexistent/chromium"  # as on a machine without it
pytestmark = needs_browser


def test_a_page(browser):
    pass
"""


def run_browser_test(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_a_page.py").write_text(A_BROWSER_TEST)
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_browser_tests_skip_without_chromium_outside_ci(tmp_path):
    result = run_browser_test(tmp_path, ci=None)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_browser_tests_fail_without_chromium_in_ci(tmp_path, ci):
    result = run_browser_test(tmp_path, ci=ci)
    assert result.returncode != 0, result.stdout
    assert "skipped" not in result.stdout
    assert "CI must run the browser tests" in result.stdout
