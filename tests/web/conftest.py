"""A real server for the browser (tests/conftest.py starts it): `llmft serve` in a subprocess on a free port,
with its own $LLMFT_HOME (the tiny model linked in), SQLite and the embedded worker; an admin key made with the
real `llmft keys create`; and Debian's Chromium driven by Playwright.

    apt-get install -y chromium fonts-wqy-microhei && pip install playwright   # no `playwright install`
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("LLMFT_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture(scope="session")
def ui_server_env(server_home) -> dict:
    home = server_home("ui-home")
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "LLMFT_HOME": str(home), "MAX_UPLOAD_MB": "2", "RATE_LIMIT": "10000/minute",
            "INFERENCE_MAX_INPUT_TOKENS": "512", "INFERENCE_MAX_NEW_TOKENS": "64", "INFERENCE_DEFAULT_MAX_TOKENS": "24"}


@pytest.fixture(scope="session")
def ui_server(ui_server_env, start_server) -> str:
    return start_server(ui_server_env, session=True)


@pytest.fixture(scope="session")
def admin_key(ui_server, ui_server_env) -> str:
    result = subprocess.run([sys.executable, "-m", "llmft.cli", "keys", "create", "--tenant", "acme", "--role", "admin"],
                            env=ui_server_env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set LLMFT_TEST_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh English page that collects the page's uncaught script errors in `page.script_errors`."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.script_errors = []
    page.on("pageerror", lambda error: page.script_errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS
