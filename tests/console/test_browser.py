"""The console end to end in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium through /usr/bin/chromedriver, so nothing is
downloaded) against `s321 console` started as a user would, over a ledger filed
through the sandbox. Log in, filter, open a record, retry a dead letter and see the
sandbox accept it; a client-scoped user cannot open another client's record by its URL;
a form posted from another origin is refused.

Screenshots of each page go to a temporary folder (its path is printed), or to
$S321_CONSOLE_SCREENSHOTS when set: never into the repository."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.world import PASSWORD, World, running_console
from s321.console.queries import LedgerReader

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")

if not (CHROMEDRIVER.exists() and CHROMIUM.exists()):  # pragma: no cover - a machine without them
    pytest.fail("the browser tests need Debian's chromium and chromium-driver: `make sysdeps` (as root)"
                " installs them", pytrace=False)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402




@pytest.fixture(scope="module")
def console_url(world: World) -> Iterator[str]:
    with running_console(world.config) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("S321_CONSOLE_SCREENSHOTS") or tmp_path_factory.mktemp("console-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(browser: WebDriver, url: str, user: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{url}/login")
    browser.find_element(By.ID, "username").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "overview")))


def state(world: World, txid: str) -> str:
    found = LedgerReader(world.ledger).record(None, txid)
    assert found is not None
    return str(found["state"])


def test_operator_logs_in_filters_opens_a_record_and_retries_a_dead_letter(
        world: World, console_url: str, browser: WebDriver, shots: Path) -> None:
    browser.delete_all_cookies()
    browser.get(f"{console_url}/records")  # not logged in: the login page
    assert browser.current_url.endswith("/login")
    browser.save_screenshot(str(shots / "01-login.png"))
    log_in(browser, console_url, "otto")
    overview = browser.find_element(By.ID, "overview").text
    assert "ALPHA01" in overview and "BETA002" in overview and "stuck" in overview
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#overview thead th")]
    assert "records" in headers and "received" not in headers  # a total, not a state no record is in
    browser.save_screenshot(str(shots / "02-overview.png"))

    # Filter: the invalid records.
    browser.find_element(By.LINK_TEXT, "Records").click()
    Select(browser.find_element(By.ID, "state")).select_by_value("invalid")
    browser.find_element(By.ID, "filter").click()
    WebDriverWait(browser, 10).until(ec.url_contains("state=invalid"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#records tbody tr")
    assert sorted(r.find_element(By.CSS_SELECTOR, "td a").text for r in rows) == ["A-4", "A-5"]
    browser.save_screenshot(str(shots / "03-records-invalid.png"))

    # Open one: its findings say how to fix them.
    rows[0].find_element(By.CSS_SELECTOR, "td a").click()
    findings = WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "findings"))).text
    assert "missing-one-of" in findings and "tracking table" in findings
    browser.save_screenshot(str(shots / "04-record-invalid.png"))

    browser.find_element(By.LINK_TEXT, "Findings").click()
    assert "missing-one-of" in browser.find_element(By.ID, "finding-counts").text
    browser.save_screenshot(str(shots / "05-findings.png"))

    # The link is back: retry a dead letter from the page, then the daemon's next pass files it.
    world.write_config(beta_port=world.sandbox.port)
    txid = world.beta[0]
    browser.find_element(By.LINK_TEXT, "Dead letters").click()
    browser.save_screenshot(str(shots / "06-dead-letters.png"))
    row = [r for r in browser.find_elements(By.CSS_SELECTOR, "#dead tbody tr") if txid in r.text][0]
    row.find_element(By.CSS_SELECTOR, "button.retry").click()
    WebDriverWait(browser, 5).until(ec.alert_is_present()).accept()  # "Queue B-0 again?"
    flash = WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "flash"))).text
    assert "queued again" in flash
    assert state(world, txid) == "queued"
    done = world.run_once("beta")
    assert done.returncode in (0, 3), done.stdout + done.stderr
    assert state(world, txid) == "accepted"
    assert any(a[0] == txid for a in world.sandbox.store.acceptances())
    browser.get(f"{console_url}/records/{txid}")
    assert browser.find_element(By.ID, "state-value").text == "accepted"
    history = browser.find_element(By.ID, "history").text
    assert "dlq retry by an operator" in history and "accepted" in history
    browser.save_screenshot(str(shots / "07-record-accepted.png"))


def test_a_scoped_user_cannot_open_another_clients_record_by_url(
        world: World, console_url: str, browser: WebDriver, shots: Path) -> None:
    log_in(browser, console_url, "alice")  # ALPHA01 only
    assert "BETA002" not in browser.find_element(By.ID, "overview").text
    browser.get(f"{console_url}/records/{world.beta[1]}")
    assert "No record" in browser.find_element(By.ID, "missing").text
    assert "BETATRK" not in browser.page_source and "B-1" not in browser.page_source
    browser.save_screenshot(str(shots / "08-scoped-not-found.png"))
    browser.get(f"{console_url}/records/{world.alpha[0]}")
    assert browser.find_element(By.ID, "state-value").text == "accepted"


def test_a_form_posted_from_another_origin_is_refused(
        world: World, console_url: str, browser: WebDriver, shots: Path, tmp_path: Path) -> None:
    log_in(browser, console_url, "ada")
    txid = world.beta[1]
    assert state(world, txid) == "dead"
    # Another site (another origin: another port) with a form aimed at the console.
    (tmp_path / "evil.html").write_text(
        f'<!doctype html><form method="post" action="{console_url}/records/{txid}/retry">'
        '<input type="hidden" name="csrf" value="guessed"><button id="go">win a prize</button></form>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/evil.html")
        browser.find_element(By.ID, "go").click()
        refused = WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "refused"))).text
        assert "another site" in refused
        browser.save_screenshot(str(shots / "09-cross-origin-refused.png"))
    finally:
        server.shutdown()
        server.server_close()
    assert state(world, txid) == "dead"
