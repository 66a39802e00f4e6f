"""The web dashboard in a real browser (Debian's chromium, driven by Playwright) against the
whole system running as processes: key prompt, drag-and-drop upload, a job started from the
asset page and watched live, the output played in the page, a cancel, the workers, and
hostile filenames shown as text.

One stack and one browser for the module; the tests run in file order and share the page.
MPR_TEST_SCREENSHOT=docs/dashboard.png writes the README's screenshot (make screenshot).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import bucket_pair, endpoints_env
from tests.support.browser import launch
from tests.support.media import make_video
from tests.support.stack import Stack, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "dashboard-test-key-0123456789"
HOSTILE = "<img src=x onerror=alert(1)>.mp4"
TIMEOUT_MS = 60_000
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def dash(amqp_url, s3, s3_client, tmp_path_factory) -> Iterator[Stack]:
    """The four services on fresh buckets, the notifier letting the gateway's page read SSE."""
    tmp = tmp_path_factory.mktemp("dashboard")
    pair = bucket_pair(s3_client)
    buckets = next(pair)
    gateway_port, notifier_port = free_port(), free_port()
    env = {
        **endpoints_env(amqp_url, s3, buckets, f"sqlite+aiosqlite:///{tmp / 'mpr.db'}"),
        "LOG_LEVEL": "INFO",
        "MPR_API_KEYS": f"web:{API_KEY}",
        "GATEWAY_PORT": str(gateway_port),
        "NOTIFIER_PORT": str(notifier_port),
        "TRANSCODER_WORK_DIR": str(tmp / "work"),
        "PUBLIC_EVENTS_URL": f"http://127.0.0.1:{notifier_port}",
        "CORS_ORIGINS": f"http://127.0.0.1:{gateway_port}",
        "WORKER_HEARTBEAT_SECONDS": "1",
        # long.mp4 (~6 MB) goes up in presigned multipart parts, the others in one PUT.
        "UPLOAD_MULTIPART_THRESHOLD_BYTES": str(1024 * 1024),
    }
    stack = Stack(env=env, log_dir=tmp / "logs")
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        print(stack.all_logs())
        next(pair, None)  # bucket_pair empties and deletes the buckets


@pytest.fixture(scope="module")
def api(dash: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dash.gateway_url, headers={"X-API-Key": API_KEY}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


class Console:
    """What the page reported: errors, CSP refusals, alert() calls."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []


@pytest.fixture(scope="module")
def console() -> Console:
    return Console()


@pytest.fixture(scope="module")
def page(browser: Browser, dash: Stack, console: Console) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda exc: console.errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: (
            console.errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )

    def on_dialog(dialog) -> None:
        console.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    context.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A short clip to play, a longer one to cancel, and one with a hostile name."""
    tmp = tmp_path_factory.mktemp("clips")
    return {
        "clip.mp4": make_video(tmp / "clip.mp4", seconds=6, size="320x240"),
        "long.mp4": make_video(tmp / "long.mp4", seconds=60, size="320x240"),
        HOSTILE: make_video(tmp / "hostile.mp4", seconds=1, size="160x90"),
    }


def enter_key(page: Page, key: str) -> None:
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    page.fill("#key-input", key)
    page.press("#key-input", "Enter")


def drop_files(page: Page, selector: str, files: dict[str, Path]) -> None:
    """A real drop event whose DataTransfer carries ``files``, as a user's drag would."""
    payload = [
        {"name": name, "b64": base64.b64encode(path.read_bytes()).decode()}
        for name, path in files.items()
    ]
    transfer = page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: "video/mp4" }));
            }
            return dt;
        }""",
        payload,
    )
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def open_asset(page: Page, key: str) -> None:
    page.goto(f"{page.url.split('#')[0]}#/assets")
    page.locator("#assets a", has_text=key).first.click()
    # The page re-renders when the catalog's probe arrives over SSE.
    expect(page.locator("#probe-status")).to_have_text("ok")


def test_the_page_asks_for_a_key_and_again_after_a_wrong_one(page: Page, dash: Stack):
    response = page.goto(f"{dash.gateway_url}/")
    assert response is not None and response.ok
    assert "MPR" in page.title()
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert dash.notifier_url in csp  # the SSE stream
    enter_key(page, "not-the-key")
    expect(page.locator("#key-reason")).to_contain_text("refused")
    expect(page.locator("#key-dialog")).to_be_visible()
    enter_key(page, API_KEY)
    expect(page.locator("#key-dialog")).to_be_hidden()
    expect(page.locator("#jobs")).to_be_visible()
    expect(page.locator("#live")).to_have_text("live")
    assert page.evaluate("localStorage.getItem('mpr.apiKey')") == API_KEY


def test_drop_upload_of_several_files_registers_them(page: Page, clips, api, console: Console):
    page.click("a[data-nav=upload]")
    drop_files(page, "#drop-zone", clips)
    items = page.locator("#upload-list .item")
    expect(items).to_have_count(3)
    for name, path in clips.items():
        item = page.locator(f'#upload-list .item[data-filename="{name}"]')
        expect(item).to_have_attribute("data-state", "completed")
        mode = "multipart" if path.stat().st_size > 1024 * 1024 else "single"
        expect(item).to_have_attribute("data-mode", mode)
    expect(page.locator('#upload-list .item[data-mode="multipart"]')).to_have_count(1)
    keys = {a["key"] for a in api.get("/api/assets", params={"limit": 10}).json()["items"]}
    assert set(clips) <= keys  # registered at once, without a scan
    assert not console.dialogs


def test_a_refused_upload_shows_the_apis_error(page: Page, api, tmp_path: Path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not media")
    drop_files(page, "#drop-zone", {"notes.txt": notes})
    item = page.locator('#upload-list .item[data-filename="notes.txt"]')
    expect(item).to_have_attribute("data-state", "failed")
    refused = api.post("/api/uploads", json={"filename": "notes.txt", "size": notes.stat().st_size})
    assert refused.status_code == 422
    expect(item.locator(".error")).to_have_text(refused.json()["error"]["message"])


def test_a_hostile_filename_renders_as_text(page: Page, console: Console):
    page.click("a[data-nav=assets]")
    link = page.locator("#assets a", has_text=HOSTILE)
    expect(link).to_have_text(HOSTILE)
    assert page.locator("#view img").count() == 0
    assert page.locator("#upload-list img, #assets img").count() == 0
    assert not console.dialogs


def test_job_from_the_asset_page_runs_live_completes_and_plays(page: Page, dash: Stack):
    open_asset(page, "clip.mp4")
    page.select_option("#preset", "h264-480p")
    # Record, from now on, whether fps was ever shown while the job ran.
    page.evaluate(
        """() => {
            window.progressSeen = [];
            const check = () => {
                const text = document.querySelector("#job-progress .text");
                if (text && !window.progressSeen.includes(text.textContent)) {
                    window.progressSeen.push(text.textContent);
                }
            };
            new MutationObserver(check).observe(document.body, {
                subtree: true, childList: true, characterData: true,
            });
        }"""
    )
    page.click("#start-job")
    page.wait_for_url("**/#/jobs/*")
    expect(page.locator("h1 .badge")).to_have_text("completed", timeout=120_000)
    seen = page.evaluate("window.progressSeen")
    assert any(re.search(r"\d+ fps", text) for text in seen), seen
    expect(page.locator("#timeline li[data-event='job.completed']")).to_have_count(1)
    expect(page.locator("#output-table a", has_text="Download")).to_have_count(1)
    page.wait_for_function(
        "() => { const v = document.querySelector('video#player'); return v && v.duration > 0; }"
    )
    duration = page.evaluate("document.querySelector('video#player').duration")
    assert 5.0 < duration < 7.0
    job_id = page.url.rsplit("/", 1)[1]
    page.click("a[data-nav=jobs]")
    row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    expect(row).to_have_attribute("data-status", "completed")
    expect(row.locator(".progress .text")).to_have_text("100%")


def test_an_hls_output_plays_through_the_vendored_hls_js(page: Page, api: httpx.Client):
    asset = api.get("/api/assets", params={"prefix": "clip.mp4"}).json()["items"][0]
    job = api.post("/api/jobs", json={"asset_id": asset["id"], "kind": "hls"}).json()
    page.goto(f"{page.url.split('#')[0]}#/jobs/{job['id']}")
    expect(page.locator("h1 .badge")).to_have_text("completed", timeout=120_000)
    # Segments and variant playlists each go through their own presigned URL.
    page.wait_for_function(
        "() => { const v = document.querySelector('video#player'); return v && v.duration > 0; }"
    )
    assert page.evaluate("typeof window.Hls") == "function"


def test_the_asset_page_shows_probe_details_and_a_thumbnail(page: Page, api: httpx.Client):
    asset = api.get("/api/assets", params={"prefix": "clip.mp4"}).json()["items"][0]
    job = api.post("/api/jobs", json={"asset_id": asset["id"], "kind": "thumbnail", "at": 1}).json()
    page.goto(f"{page.url.split('#')[0]}#/jobs/{job['id']}")
    expect(page.locator("h1 .badge")).to_have_text("completed")
    page.goto(f"{page.url.split('#')[0]}#/assets/{asset['id']}")
    streams = page.locator("#streams tbody tr")
    expect(streams.filter(has_text="h264")).to_contain_text("320\N{MULTIPLICATION SIGN}240")
    expect(streams.filter(has_text="aac")).to_contain_text("48000 Hz")
    page.wait_for_function(
        "() => { const i = document.querySelector('img#thumbnail'); "
        "return i && i.complete && i.naturalWidth > 0; }"
    )


def test_cancel_a_running_job(page: Page, tmp_path: Path):
    open_asset(page, "long.mp4")
    page.select_option("#preset", "hevc-1080p")
    page.click("#start-job")
    page.wait_for_url("**/#/jobs/*")
    job_page = page.url
    expect(page.locator("h1 .badge")).to_have_text("running")
    # While it runs: the live table, the README's screenshot.
    page.click("a[data-nav=jobs]")
    running = page.locator("#jobs tr[data-status=running] .progress .text")
    # "42% · 118 fps · 3.1x · ETA 0:05", the speed's sign matched by [^ ].
    expect(running).to_have_text(re.compile(r"^[1-9]\d*% · \d+ fps · [\d.]+[^ ] · ETA \d+:\d\d$"))
    target = os.environ.get("MPR_TEST_SCREENSHOT")
    path = ROOT / target if target else tmp_path / "dashboard.png"
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1360, "height": 420})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.goto(job_page)
    page.click("#job-cancel")
    expect(page.locator("h1 .badge")).to_have_text("cancelled")
    expect(page.locator("#timeline li[data-event='job.cancelled']")).to_have_count(1)
    expect(page.locator("#job-retry")).to_be_visible()


def test_workers_and_queue(page: Page):
    page.click("a[data-nav=workers]")
    expect(page.locator("#workers tr[data-worker]")).to_have_count(1)
    expect(page.locator("#queue")).to_contain_text("mpr.transcoder.jobs")


def test_numbers_of_the_last_day(page: Page, console: Console):
    page.click("a[data-nav=jobs]")
    expect(page.locator("#jobs tbody tr[data-job-id]")).to_have_count(4)
    expect(page.locator("[data-stat=completed] .value")).to_have_text("3")
    expect(page.locator("[data-stat=cancelled] .value")).to_have_text("1")
    expect(page.locator("[data-stat=speed] .value")).to_contain_text("\N{MULTIPLICATION SIGN}")
    assert not console.errors, console.errors
    assert not console.dialogs
