"""
Fixtures for the real-browser tests: one Playwright driver and one headless
Chromium per session, a new browser context (a separate person) per page,
the real service in a child process, and a screenshot of every open page
when a test fails.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.support import CHROMIUM, CHROMIUM_ARGS
from tests.support.processes import REPO, ServiceProcess
from tests.support.tools import requireTool

ARTIFACTS = REPO / "artifacts"

def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def playwright():
    """
    The Playwright driver: one per session, since a second sync_playwright()
    in the same thread fails.
    """
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright):
    """
    Debian's Chromium, headless; missing Chromium skips locally and fails
    under CI=true.
    """
    executable = requireTool("chromium", CHROMIUM)
    chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                          headless=True)
    yield chromium
    chromium.close()


@pytest.fixture
def new_page(browser, request):
    """
    A factory: each call is a new browser context (its own localStorage, like
    another person) with one page that records its errors and dialogs.
    """
    contexts, pages = [], []
    request.node.e2ePages = pages

    def make(url: str | None = None, width: int = 900, height: int = 560, **options):
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        context.set_default_timeout(5000)
        contexts.append(context)
        page = context.new_page()
        page.errors, page.dialogs, page.requests = [], [], []
        page.on("request", lambda r: page.requests.append(r.url))
        page.on("websocket", lambda ws: page.requests.append(ws.url))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.on("response", lambda r: r.status >= 400 and page.errors.append(f"HTTP {r.status} {r.url}"))
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        pages.append(page)
        if url:
            page.goto(url)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def server():
    """
    One service shared by the tests that neither stop it nor need other
    options; they keep apart by using a room of their own (L{room}).
    """
    proc = ServiceProcess.onLoopback("--clock-interval", "0.5")
    proc.start()
    yield proc
    proc.stop(signal.SIGKILL)


@pytest.fixture
def room(request) -> str:
    """
    A chat room name of this test's own, so tests can share L{server}.
    """
    name = request.node.name.lower().removeprefix("test_")
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40]


@pytest.fixture
def service(serviceFactory):
    """
    A factory: service(*args, port=0) starts the real twistd service on
    127.0.0.1; every one started is killed after the test.
    """
    return serviceFactory


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """
    When a test fails, save a screenshot of each page it had open into
    artifacts/ (git-ignored; CI keeps it).
    """
    outcome = yield
    report = outcome.get_result()
    if not report.failed or report.when not in ("setup", "call"):
        return
    safe = re.sub(r"[^\w.-]+", "_", item.nodeid.split("::", 1)[-1])
    for index, page in enumerate(getattr(item, "e2ePages", [])):
        if page.is_closed():
            continue
        path = ARTIFACTS / f"{safe}-{index}.png"
        try:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(path), full_page=True)
        except Exception as e:  # a broken page must not hide the real failure
            report.sections.append(("screenshot", f"could not save {path}: {e}"))
        else:
            report.sections.append(("screenshot", str(path)))
