"""The officer console end to end in headless Chromium: sign in, see the live alert, compare the
camera crop with the watchlist image, adjudicate and record the outcome; the result is checked
through the API. A screenshot of the opened alert is kept in build/artifacts/console.png.

Needs Debian's chromium + chromium-driver and selenium; skips (saying which) without them.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.auth import issue_local_token
from tests.conftest import REPO
from tests.integration.conftest import demo_person, jpeg

ARTIFACTS = REPO / "build" / "artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000",
]


def _find(*candidates: str) -> str | None:
    for c in candidates:
        found = shutil.which(c) or (c if Path(c).is_file() else None)
        if found:
            return found
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="needs selenium (pip install -r requirements-dev.txt)")
    chromium = _find("/usr/bin/chromium", "chromium", "chromium-browser")
    driver_path = _find("/usr/bin/chromedriver", "chromedriver")
    if not chromium or not driver_path:
        pytest.skip("needs Debian's chromium and chromedriver "
                    "(apt-get install -y chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    # Fixed paths: selenium must not go looking for a driver on the network (Selenium Manager).
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console_url(local_stack: dict[str, Any]) -> Iterator[str]:
    """The Chalice app (bound to the local stack) served over HTTP on a free port."""
    from chalice.config import Config
    from chalice.local import create_local_server

    app = local_stack["app"]
    original_class = app.__class__
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = create_local_server(app, Config.create(app_name="lfr", lambda_timeout=60,
                                                    lambda_memory_size=1024),
                                 "127.0.0.1", port)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True,
                              name="console-http")
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/health")
        yield base
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(10)
        # create_local_server swaps the app's class for a thread-local one: put it back for
        # the other tests of the session.
        app.__class__ = original_class


def _wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _get(url: str, token: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_officer_adjudicates_an_alert_in_the_console(
    scenario_factory, local_stack, console_url, browser
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))])
    local_stack["pump"].drain(timeout=120)
    alerts = sc.alerts()
    assert len(alerts) == 1, "the enrolled person's other photo should make one alert"
    alert_id = alerts[0].alert_id

    secret = local_stack["settings"].local_auth_secret
    assert secret, "the local stack sets LFR_LOCAL_AUTH_SECRET"
    token = issue_local_token(secret, sub="officer-1", roles=["officer"],
                              deployments=[sc.deployment_id])

    d, wait = browser, WebDriverWait(browser, 20)
    d.get(f"{console_url}/console")
    wait.until(EC.visibility_of_element_located((By.ID, "token"))).send_keys(token)
    d.find_element(By.ID, "deployment").send_keys(sc.deployment_id)
    d.find_element(By.ID, "signin").click()

    # The live list shows the alert; open it.
    item = wait.until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, f'#alerts li[data-alert-id="{alert_id}"] button')))
    assert "Cory Gardner" in item.text
    # Each camera of the deployment with its state: this one's gateway never reported.
    cam = wait.until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, f'#cameras li[data-camera="{sc.camera_id}"]')))
    assert cam.get_attribute("class") == "dark" and "dark since" in cam.text
    item.click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "detail-title"), "Cory Gardner"))

    def images_loaded(drv: Any) -> bool:
        return bool(drv.execute_script(
            "return ['crop', 'reference'].every(function (id) {"
            "  var i = document.getElementById(id);"
            "  return i.complete && i.naturalWidth > 0; });"))

    wait.until(images_loaded, "the camera crop and the watchlist image should both load")
    assert "error" not in (d.find_element(By.ID, "status").get_attribute("class") or "")
    assert "review" in d.find_element(By.ID, "review-note").text.lower()
    score = d.find_element(By.ID, "score").text
    assert f"{alerts[0].score:.3f}" in score and f"{alerts[0].threshold:.3f}" in score
    assert d.find_element(By.ID, "camera").text == sc.camera_id
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert d.save_screenshot(str(ARTIFACTS / "console.png"))
    d.set_window_size(390, 844)  # a phone
    d.save_screenshot(str(ARTIFACTS / "console-phone.png"))
    d.set_window_size(1280, 1000)

    d.find_element(By.ID, "btn-true").click()
    wait.until(lambda drv: drv.find_element(By.ID, "alert-status")
               .get_attribute("data-status") == "true_alert")
    assert not d.find_element(By.ID, "btn-true").is_enabled()  # adjudication is final
    wait.until(EC.element_to_be_clickable((By.ID, "outcome")))
    Select(d.find_element(By.ID, "outcome")).select_by_value("arrested")
    d.find_element(By.ID, "btn-outcome").click()
    wait.until(lambda drv: drv.find_element(By.ID, "alert-outcome")
               .get_attribute("data-outcome") == "arrested")
    assert "error" not in (d.find_element(By.ID, "status").get_attribute("class") or "")
    d.save_screenshot(str(ARTIFACTS / "console-adjudicated.png"))

    # The token stays in this tab's sessionStorage, never in localStorage or a cookie.
    assert d.execute_script("return sessionStorage.getItem('lfr.token')") == token
    assert d.execute_script("return window.localStorage.length") == 0
    assert d.get_cookies() == []

    view = _get(f"{console_url}/alerts/{alert_id}", token)
    assert view["status"] == "true_alert"
    assert view["outcome"] == "arrested"
    assert view["adjudicated_by"] == "officer-1"
    assert view["outcome_by"] == "officer-1"
    listed = _get(f"{console_url}/deployments/{sc.deployment_id}/alerts", token)
    assert [(a["alert_id"], a["status"]) for a in listed] == [(alert_id, "true_alert")]


def test_expired_alert_link_is_shown_as_expired(
    scenario_factory, local_stack, console_url, browser
) -> None:
    """The push's short-lived link: after sign-in the page opens the alert, and says clearly when
    the link has expired (410) instead of showing it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    sc = scenario_factory({"Gwen Moore": [demo_person("Gwen_Moore", 1)]})
    sc.upload(0, [jpeg(demo_person("Gwen_Moore", 2))])
    local_stack["pump"].drain(timeout=120)
    alerts = sc.alerts()
    assert alerts, "no alert for the enrolled person"
    alert_id = alerts[0].alert_id
    token = issue_local_token(local_stack["settings"].local_auth_secret, sub="officer-1",
                              roles=["officer"], deployments=[sc.deployment_id])

    d, wait = browser, WebDriverWait(browser, 20)
    d.get(f"{console_url}/console?alert={alert_id}&exp=1&sig=deadbeef")
    wait.until(EC.visibility_of_element_located((By.ID, "link-note")))
    d.find_element(By.ID, "token").send_keys(token)
    d.find_element(By.ID, "deployment").send_keys(sc.deployment_id)
    d.find_element(By.ID, "signin").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "expired"))
    assert "error" in d.find_element(By.ID, "status").get_attribute("class")
    assert d.find_element(By.ID, "detail-body").get_attribute("hidden") is not None
    assert "sig=" not in d.current_url  # the link is dropped from the address bar
    # The list still works, and the alert opens from it without the link.
    wait.until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, f'#alerts li[data-alert-id="{alert_id}"] button'))).click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "detail-title"), "Gwen Moore"))


def test_a_lookalike_alert_is_shown_flagged(scenario_factory, local_stack, console_url,
                                            browser) -> None:
    """Issue 10, item 5: the look-alike an officer ruled out, passing again, is not pushed; the
    console lists it flagged and says which alert it resembles, and it can be adjudicated."""
    from datetime import UTC, datetime, timedelta

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from chalicelib.alerts.adjudication import adjudicate

    sc = scenario_factory({"Doris Matsui": [demo_person("Doris_Matsui", 1)]}, threshold=0.25)
    t0 = datetime.now(UTC)
    sc.upload(0, [jpeg(demo_person("Anna_Eshoo", 2))], at=t0)
    local_stack["pump"].drain(timeout=120)
    [first] = sc.alerts()
    adjudicate(sc.rt.tables, first.alert_id, "false_alert", "officer-1")
    sc.upload(1, [jpeg(demo_person("Anna_Eshoo", 2))], at=t0 + timedelta(minutes=10))
    local_stack["pump"].drain(timeout=120)
    [again] = [a for a in sc.alerts() if a.alert_id != first.alert_id]
    assert again.lookalike_of == first.alert_id
    token = issue_local_token(local_stack["settings"].local_auth_secret, sub="officer-1",
                              roles=["officer"], deployments=[sc.deployment_id])

    d, wait = browser, WebDriverWait(browser, 20)
    d.get(f"{console_url}/console")
    wait.until(EC.visibility_of_element_located((By.ID, "token"))).send_keys(token)
    d.find_element(By.ID, "deployment").send_keys(sc.deployment_id)
    d.find_element(By.ID, "signin").click()
    item = wait.until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, f'#alerts li[data-alert-id="{again.alert_id}"] button')))
    assert "Look-alike ruled out, not pushed" in item.text
    first_item = d.find_element(By.CSS_SELECTOR,
                                f'#alerts li[data-alert-id="{first.alert_id}"] button')
    assert "Look-alike" not in first_item.text
    item.click()
    wait.until(EC.visibility_of_element_located((By.ID, "lookalike")))
    note = d.find_element(By.ID, "lookalike").text
    assert first.alert_id in note and "Not pushed" in note and "Doris Matsui" in note
    assert d.find_element(By.ID, "btn-false").is_enabled()  # still for an officer to review
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / "console-lookalike.png"))
    d.find_element(By.ID, "btn-false").click()
    wait.until(lambda drv: drv.find_element(By.ID, "alert-status")
               .get_attribute("data-status") == "false_alert")


def test_console_page_is_self_contained() -> None:
    """No external assets: the page must work on a locked-down device with no CDN."""
    html = (REPO / "chalicelib" / "console" / "index.html").read_text()
    for marker in ("http://", "https://", "//cdn", "<link ", "src=\"http"):
        assert marker not in html, marker
    assert "localStorage.setItem" not in html


def test_console_route_serves_the_page(console_url: str) -> None:
    with urllib.request.urlopen(f"{console_url}/console", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert 'id="signin"' in r.read().decode()
    req = urllib.request.Request(f"{console_url}/deployments/dep-x/alerts")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 401
