"""The web demo in a real headless Chromium (Selenium + Debian's chromium/chromedriver): upload a real clip, read the
answer off the page, and see the error messages a person would see."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from acoustemo.serve import make_server, model_predictor  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1700"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server_factory(debug_model):
    servers = []

    def start(max_upload_mb=200):
        server = make_server(model_predictor(debug_model), "127.0.0.1", 0, max_upload_mb=max_upload_mb, model_name="debug")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _open(browser, server):
    browser.get(server.url)
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")


def _wait_for_answer(browser, timeout_s=150):
    """Wait until the page shows a result or an error; returns which."""
    WebDriverWait(browser, timeout_s).until(
        lambda d: d.find_element(By.ID, "result").is_displayed() or d.find_element(By.ID, "error").is_displayed())
    return "result" if browser.find_element(By.ID, "result").is_displayed() else "error"


def test_upload_a_video_and_read_the_answer(browser, server_factory, debug_model, dialogue_video, tmp_path,
                                            write_srt):
    video, utts = dialogue_video
    subs = write_srt(tmp_path / "dialogue.srt", utts)
    server = server_factory()
    _open(browser, server)
    assert "model: debug" in browser.find_element(By.ID, "model").text

    browser.find_element(By.ID, "media").send_keys(str(video))
    browser.find_element(By.ID, "subtitles").send_keys(str(subs))
    browser.find_element(By.ID, "speaker").send_keys("Anna")
    browser.find_element(By.ID, "submit").click()
    assert _wait_for_answer(browser) == "result", browser.find_element(By.ID, "error").text

    # the page shows exactly the model's answer (greedy decoding: the same call gives the same text)
    from acoustemo.infer import predict_clip

    expected = predict_clip(video, subs, "Anna", model=debug_model)
    emotions = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#emotions li")]
    explanation = browser.find_element(By.ID, "explanation").text
    assert emotions == (expected.emotions or ["no emotion named"])
    assert explanation == (expected.explanation or "(no explanation given)")
    # the untrained debug model answers nothing useful, so its parse warnings are what the page must show
    shown = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#warnings li")]
    assert shown == expected.warnings and shown
    rows = browser.find_elements(By.CSS_SELECTOR, "#utterances tbody tr")
    cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]
    assert [c[3] for c in cells] == [u["speaker"] for u in utts]
    assert [c[4] for c in cells] == [u["text"] for u in utts]
    assert cells[0][1] == f"0:{utts[0]['start']:05.2f}"
    assert "dialogue.mp4" in browser.find_element(By.ID, "result-file").text
    assert "target speaker: Anna" in browser.find_element(By.ID, "meta").text
    plot = browser.find_element(By.ID, "plot")
    assert plot.is_displayed() and browser.execute_script("return arguments[0].naturalWidth", plot) >= 1000
    assert not browser.find_element(By.ID, "error").is_displayed()
    shot = tmp_path / "demo-result.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}; emotions {emotions}; explanation {explanation!r}")


def test_wrong_content_shows_the_servers_message(browser, server_factory, tmp_path):
    fake = tmp_path / "notes.wav"
    fake.write_text("these are my notes, not a recording\n" * 10)
    server = server_factory()
    _open(browser, server)
    browser.find_element(By.ID, "media").send_keys(str(fake))
    browser.find_element(By.ID, "submit").click()
    assert _wait_for_answer(browser, 60) == "error"
    message = browser.find_element(By.ID, "error").text
    assert "notes.wav" in message and "not audio or video" in message and "HTTP 415" in message
    assert not browser.find_element(By.ID, "result").is_displayed()


def test_too_big_upload_is_refused_by_the_page_and_by_the_server(browser, server_factory, dialogue, tmp_path):
    wav, _ = dialogue
    server = server_factory(max_upload_mb=0.1)
    _open(browser, server)
    browser.find_element(By.ID, "media").send_keys(str(wav))
    browser.find_element(By.ID, "submit").click()
    assert _wait_for_answer(browser, 20) == "error"
    assert "accepts at most 0.1 MB" in browser.find_element(By.ID, "error").text  # the page's own check

    browser.execute_script("limits.max_upload_bytes = null")  # skip the page's check: the server must refuse too
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 60).until(lambda d: "HTTP 413" in d.find_element(By.ID, "error").text)
    message = browser.find_element(By.ID, "error").text
    assert "0.3 MB but this server accepts at most 0.1 MB" in message and "--max-upload-mb" in message
    browser.save_screenshot(str(tmp_path / "demo-413.png"))


def test_page_renders_a_full_answer(browser, server_factory):
    """What a trained model's answer looks like on the page (the debug model's answers are empty): the JSON of
    `predict --json` goes through the page's own renderer."""
    _open(browser, server_factory())
    answer = {"id": "talk", "emotions": ["anxious", "worried"], "explanation": "Her voice trembles at the end.",
              "utterances": [{"start": 0.3, "end": 2.85, "speaker": "Anna", "text": "It's fine, I just..."}],
              "timestamps_source": "subtitles", "model": "runs/exp1/best", "warnings": [], "plot": None,
              "upload": {"media": "talk.mp4", "subtitles": None, "speaker": "Anna"}}
    browser.execute_script("renderResult(arguments[0])", answer)
    assert [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#emotions li")] == ["anxious", "worried"]
    assert browser.find_element(By.ID, "explanation").text == "Her voice trembles at the end."
    meta = browser.find_element(By.ID, "meta").text
    assert "utterance times from: subtitles" in meta and "model: runs/exp1/best" in meta
    assert not browser.find_element(By.ID, "plot-figure").is_displayed()
    row = browser.find_element(By.CSS_SELECTOR, "#utterances tbody tr")
    assert [td.text for td in row.find_elements(By.TAG_NAME, "td")] == ["1", "0:00.30", "0:02.85", "Anna",
                                                                        "It's fine, I just..."]
