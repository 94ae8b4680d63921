"""The chat and status pages in a real headless Chromium (Debian's `chromium` + `chromium-driver`), driven by
Selenium against `python -m afactors` on loopback. Screenshots land in `$AFACTORS_SCREENSHOTS` when it is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from afactors.testing import serve_cli  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TESTS = Path(__file__).parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()), reason="needs chromium"),
]
WAIT = 20.0  # seconds a page may take to show what a step waits for


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`python -m afactors` with the gated target and an API key; yields its URL and the gate file."""
    gate = tmp_path / "gate"
    args = ["--state-dir", str(tmp_path / "state"), "--target", "gated_target:agent"]
    env = {"AFACTORS_TEST_GATE": str(gate)}
    with serve_cli(*args, "--channel", "responses", "--api-key", "sekrit", pythonpath=[TESTS], env=env) as (_, url):
        yield url, gate


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1100,760",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver: WebDriver, css: str) -> str:
    """The text of every element matching `css`, read in one script (the status page re-renders its tables)."""
    script = "return Array.from(document.querySelectorAll(arguments[0]), e => e.textContent).join(' ');"
    return str(driver.execute_script(script, css))


def wait_for(driver: WebDriver, condition: object, what: str) -> None:
    WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition, message=what)  # type: ignore[arg-type]


def screenshot(driver: WebDriver, name: str) -> None:
    folder = os.environ.get("AFACTORS_SCREENSHOTS")
    if folder:
        driver.save_screenshot(str(Path(folder) / name))


def enter_key(driver: WebDriver) -> None:
    wait_for(driver, lambda d: d.find_element(By.ID, "key-form").is_displayed(), "the page asks for the API key")
    driver.find_element(By.ID, "key-input").send_keys("sekrit\n")


def send(driver: WebDriver, text: str) -> None:
    driver.find_element(By.ID, "input").send_keys(text + "\n")


def test_chat_streams_answers_queues_and_the_status_page_shows_the_conversation(
    served: tuple[str, Path], browser: WebDriver
) -> None:
    url, gate = served
    browser.get(url + "/")
    send(browser, "remember that the sky is green")
    enter_key(browser)  # the first request was refused (401): the page asks once and sends again
    wait_for(browser, lambda d: "I will remember that the sky is green." in text_of(d, ".msg.assistant"), "answer 1")
    conversation = browser.find_element(By.ID, "conversation").text
    assert conversation.startswith("web-")

    # a turn of the same conversation that holds, then one queued behind it: the page says so
    send(browser, "hold on")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant")) == 2, "second turn sent")
    send(browser, "what do you remember?")
    wait_for(browser, lambda d: "queued behind another turn" in d.find_element(By.ID, "state").text, "queued")
    screenshot(browser, "chat-queued.png")
    gate.touch()
    wait_for(browser, lambda d: "I remember: the sky is green." in text_of(d, ".msg.assistant"), "answer 3")
    assert "Turn 2. You said: hold on" in text_of(browser, ".msg.assistant")

    # the conversation survives a reload (the key too: this tab's sessionStorage)
    browser.refresh()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant")) == 3, "history restored")
    assert browser.find_element(By.ID, "conversation").text == conversation
    send(browser, "and now?")
    wait_for(browser, lambda d: "Turn 4. You said: and now?" in text_of(d, ".msg.assistant"), "answer 4")
    screenshot(browser, "chat.png")

    browser.get(url + "/status")
    wait_for(browser, lambda d: "conv:" + conversation in text_of(d, "#live td"), "status shows the conversation")
    wait_for(browser, lambda d: d.find_element(By.ID, "recent").get_attribute("data-rows") == "4", "4 recent turns")
    assert "completed" in text_of(browser, "#recent td") and "responses" in text_of(browser, "#recent td")
    assert text_of(browser, "#actor-counts dd[data-name=turns]") == "4"
    browser.set_window_size(1100, 1300)
    screenshot(browser, "status.png")

    # a new conversation starts from turn 1
    browser.get(url + "/")
    browser.find_element(By.ID, "new-chat").click()
    assert browser.find_element(By.ID, "conversation").text != conversation
    assert browser.find_elements(By.CSS_SELECTOR, ".msg") == []
    send(browser, "hi")
    wait_for(browser, lambda d: "Turn 1. You said: hi" in text_of(d, ".msg.assistant"), "new conversation")


def test_a_fresh_tab_asks_for_the_key_again(served: tuple[str, Path], browser: WebDriver) -> None:
    url, _ = served
    browser.get(url + "/status")
    enter_key(browser)
    wait_for(browser, lambda d: "responses" in d.find_element(By.ID, "summary").text, "status after the key")
    browser.switch_to.new_window("tab")
    browser.get(url + "/status")  # sessionStorage is per tab
    enter_key(browser)
    wait_for(browser, lambda d: "responses" in d.find_element(By.ID, "summary").text, "status in the new tab")
