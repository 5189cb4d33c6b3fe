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

    def start(max_upload_mb=200, predictor=None):
        server = make_server(predictor or model_predictor(debug_model), "127.0.0.1", 0, max_upload_mb=max_upload_mb,
                             model_name="debug")
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
    """Wait until the page shows a result, a timeline or an error; returns which."""
    shown = ("result", "timeline", "error")
    WebDriverWait(browser, timeout_s).until(lambda d: any(d.find_element(By.ID, x).is_displayed() for x in shown))
    return next(x for x in shown if browser.find_element(By.ID, x).is_displayed())


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
    from acoustemo.predictor import predict_clip

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


def test_long_recording_shows_progress_then_the_timeline(browser, server_factory, debug_model, long_dialogue,
                                                         tmp_path):
    """A multi-minute recording: the status line counts the window answers while the model works, then the page
    shows the library's timeline: the per-speaker summary, one row per window, the lanes plot."""
    import hashlib
    import time

    from acoustemo.timeline import predict_media

    demo = model_predictor(debug_model)

    def slow_progress(media, subtitles, speaker, plot, progress=None):
        def report(done, total):  # each report stays up long enough for the page's polling to see it
            progress(done, total)
            time.sleep(2.0)

        return demo(media, subtitles, speaker, plot, report)

    wav, srt, _ = long_dialogue
    server = server_factory(predictor=slow_progress)
    _open(browser, server)
    browser.execute_script("""window.seen = [];
        new MutationObserver(() => window.seen.push(document.getElementById("status-text").textContent))
          .observe(document.getElementById("status-text"), {childList: true, characterData: true, subtree: true});""")
    browser.find_element(By.ID, "media").send_keys(str(wav))
    browser.find_element(By.ID, "subtitles").send_keys(str(srt))
    browser.find_element(By.ID, "speaker").send_keys("Cleo")
    browser.find_element(By.ID, "submit").click()
    assert _wait_for_answer(browser, 400) == "timeline", browser.find_element(By.ID, "error").text

    clip_id = "upload-" + hashlib.sha256(wav.read_bytes()).hexdigest()[:16]
    expected = predict_media(wav, srt, "Cleo", model=debug_model, clip_id=clip_id)
    n = len(expected.entries)
    seen = browser.execute_script("return window.seen")
    assert f"Asking the model about long_dialogue.wav: 0 of {n} window answers (windows × speakers)" in seen, seen
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline-rows tbody tr")
    cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]
    assert len(cells) == n > 2 and {c[2] for c in cells} == {"Cleo"}
    for c, e in zip(cells, expected.entries):
        assert c[3] == (", ".join(e.emotions) or "(none named)")
        assert c[4] == (e.explanation or "(no explanation given)")
    summary = [[td.text for td in r.find_elements(By.TAG_NAME, "td")]
               for r in browser.find_elements(By.CSS_SELECTOR, "#timeline-summary tbody tr")]
    assert [c[:2] for c in summary] == [["Cleo", str(n)]]
    meta = browser.find_element(By.ID, "timeline-meta").text
    assert f"40 utterances in {len(expected.windows)} windows of at most 30 s" in meta and "target speaker: Cleo" in meta
    plot = browser.find_element(By.ID, "timeline-plot")
    assert plot.is_displayed() and browser.execute_script("return arguments[0].naturalWidth", plot) == 1540
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert not browser.find_element(By.ID, "status").is_displayed()
    browser.save_screenshot(str(tmp_path / "demo-timeline.png"))


def test_page_renders_a_timeline_and_job_states(browser, server_factory):
    """A trained model's timeline through the page's own renderer, and what each job state says."""
    _open(browser, server_factory())
    answer = {"kind": "timeline", "media": "talk.wav", "duration_s": 3725.0, "model": "runs/exp1/best",
              "timestamps_source": "subtitles", "target_speaker": None, "config": {"max_span_s": 30},
              "speakers": ["Anna", ""],
              "utterances": [{}, {}, {}], "windows": [{}, {}],
              "timeline": [{"window": 0, "speaker": "Anna", "start": 1.5, "end": 28.0, "emotions": ["sad", "calm"],
                            "explanation": "Her voice drops."},
                           {"window": 1, "speaker": "", "start": 3600.0, "end": 3624.4, "emotions": [],
                            "explanation": ""}],
              "summary": {"Anna": {"windows": 1, "speaking_s": 20.4, "emotions": [
                  {"emotion": "sad", "share_time": 1.0, "share_windows": 1.0},
                  {"emotion": "calm", "share_time": 0.25, "share_windows": 0.5}]},
                  "": {"windows": 1, "speaking_s": 9.0, "emotions": []}},
              "warnings": ["part.srt: the cues cover 0.3-60.0 s of the 3725.0 s media"], "plot": None,
              "upload": {"media": "talk.wav", "subtitles": "part.srt", "speaker": None}}
    browser.execute_script("render(arguments[0])", answer)
    rows = [[td.text for td in r.find_elements(By.TAG_NAME, "td")]
            for r in browser.find_elements(By.CSS_SELECTOR, "#timeline-rows tbody tr")]
    assert rows == [["0:01.50", "0:28.00", "Anna", "sad, calm", "Her voice drops."],
                    ["1:00:00", "1:00:24", "(unnamed)", "(none named)", "(no explanation given)"]]
    summary = [[td.text for td in r.find_elements(By.TAG_NAME, "td")]
               for r in browser.find_elements(By.CSS_SELECTOR, "#timeline-summary tbody tr")]
    assert summary == [["Anna", "1", "20 s", "sad 100% / 100%, calm 25% / 50%"], ["(unnamed)", "1", "9 s", "(none named)"]]
    assert "duration 1:02:05 · 3 utterances in 2 windows of at most 30 s" in browser.find_element(By.ID, "timeline-meta").text
    assert [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#timeline-warnings li")] == answer["warnings"]
    assert not browser.find_element(By.ID, "timeline-plot-figure").is_displayed()
    assert "talk.wav" in browser.find_element(By.ID, "timeline-file").text
    job = {"upload": {"media": "talk.wav"}}
    states = browser.execute_script("return [jobStatus(arguments[0]), jobStatus(arguments[1]), jobStatus(arguments[2])]",
                                    {**job, "state": "queued", "ahead": 2, "done": 0, "total": 0},
                                    {**job, "state": "running", "ahead": 0, "done": 0, "total": 0},
                                    {**job, "state": "running", "ahead": 0, "done": 3, "total": 12})
    assert states == [["Waiting for the model (2 uploads ahead)…", None],
                      ["Analysing talk.wav: finding utterances, encoding the audio, asking the model…", None],
                      ["Asking the model about talk.wav: 3 of 12 window answers (windows × speakers)", 25]]
