"""The official, unmodified Segment-compatible clients against a real ``leadgate serve``.

Each client takes one lead through the default model's stages, as a site would:
an identify with who they are (senior title, company of 40: 20 fit points) and a
web design service page (+2: nurturing), two pricing pages (+20: 42 >= 40, MQL),
then a quote request (+20 and an intent action: SQL). After each step the lead
is read back from ``GET /api/leads/{id}`` with an admin key.

- segment-analytics-python (``segment.analytics``), in sync mode;
- rudder-sdk-python (``rudderstack.analytics``), queued and flushed (gzipped bodies);
- analytics.js (``@segment/analytics-next`` from npm, installed in tests/js by
  ``make test``) in headless Debian Chromium driven by Playwright, on a page served
  by the test from another origin: it loads its settings from leadgate (cdnURL)
  and posts cross-origin, so CORS and the short paths (/v1/i, /v1/p, /v1/t) are
  exercised as a browser does.

``LiveServer`` is shared with tests/test_reliability.py.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

CLI = [sys.executable, "-c", "from leadgate.cli import main; main()"]
JS_DIR = Path(__file__).parent / "js"
ANALYTICS_UMD = JS_DIR / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
CHROMIUM = "/usr/bin/chromium"


def leadgate(*args: str) -> str:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def create_key(kind: str, database_url: str) -> str:
    """A new key made by ``leadgate keys create`` (printed alone on its last line)."""
    return leadgate("keys", "create", "--kind", kind, "--database-url", database_url).split()[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """``leadgate serve`` as a real process on a free loopback port."""

    database_url: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> LiveServer:
        command = [*CLI, "serve", "--port", str(self.port), "--database-url", self.database_url]
        if self.log is None:
            self.log = Path(tempfile.mkstemp(prefix="leadgate-serve-", suffix=".log")[1])
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"leadgate serve exited with {self.proc.returncode}: {self.output()}"
                )
            try:
                httpx.get(f"{self.base}/openapi.json", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"leadgate serve did not answer within {timeout} s: {self.output()}")

    def output(self) -> str:
        """The end of what the server printed (it runs with log level warning)."""
        return "" if self.log is None else self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, nothing the process could do about it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class Served:
    server: LiveServer
    write_key: str
    admin_key: str

    @property
    def base(self) -> str:
        return self.server.base

    def lead(self, lead_id: str) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.base}/api/leads/{lead_id}",
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def wait_for_stage(self, lead_id: str, stage: str, timeout: float = 15.0) -> dict[str, Any]:
        """The lead once it is in ``stage`` (clients deliver in the background)."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | str = "never seen"
        while time.monotonic() < deadline:
            answer = httpx.get(
                f"{self.base}/api/leads/{lead_id}",
                headers={"Authorization": f"Bearer {self.admin_key}"},
                timeout=10,
            )
            if answer.status_code == 200:
                last = answer.json()
                if last["stage"] == stage:
                    return last
            time.sleep(0.1)
        raise AssertionError(f"lead {lead_id!r} did not reach {stage!r}; last seen: {last}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path / 'lg.db'}"
    write_key, admin_key = create_key("write", url), create_key("admin", url)
    server = LiveServer(url, log=tmp_path / "serve.log").start()
    try:
        yield Served(server, write_key, admin_key)
    finally:
        server.stop()


TRAITS = {"email": "Ann@Acme.io", "name": "Ann Lee", "title": "Founder", "company_size": 40}
QUOTE = {"message": "Could you quote a redesign of our site?"}


def assert_journey(lead: dict[str, Any]) -> None:
    """A lead taken through nurturing, MQL and SQL by the events above."""
    moves = [(h["from"], h["to"]) for h in lead["stage_history"]]
    assert moves == [
        ("new", "nurturing"),
        ("nurturing", "mql"),
        ("mql", "sql"),
        ("sql", "handed_over"),
    ], moves
    assert lead["stage"] == "handed_over"
    model_moves = lead["stage_history"][:3]
    assert all(h["actor"] == "model" and h["cause"] for h in model_moves)
    assert "quote_requested" in model_moves[-1]["cause"]
    assert lead["stage_history"][-1]["actor"] == "handover"
    breakdown = lead["breakdown"]
    assert breakdown["decision"]["stage"] == "sql"
    assert breakdown["intent"]["event_type"] == "quote_requested"
    rules = {r["rule_id"] for r in breakdown["rules"]}
    assert {"senior-title", "company-size-fit", "pricing-page", "quote-request"} <= rules
    assert 61 < lead["score"] <= 62  # 20 fit + 2 + 20 + 20, a few seconds of decay
    explanation = breakdown["explanation"]
    assert isinstance(explanation, str) and explanation.strip()
    assert "SQL" in explanation and "pricing page" in explanation
    assert lead["attributes"]["email"] == "ann@acme.io"


def python_client_journey(
    served: Served, lead_id: str, send: Callable[[str, dict[str, Any]], None]
) -> None:
    """Drive ``send(call, kwargs)`` (one client call, delivered before it returns)
    and check the lead after each step."""
    send("identify", {"user_id": lead_id, "traits": TRAITS})
    web_design = {"path": "/services/web-design"}
    send("page", {"user_id": lead_id, "name": "Web design", "properties": web_design})
    lead = served.wait_for_stage(lead_id, "nurturing")
    assert lead["attributes"].get("email") == "ann@acme.io", (
        f"identify traits did not reach the lead: {lead['attributes']}"
    )
    assert lead["attributes"].get("title") == "Founder"
    for path in ("/pricing", "/pricing/plans"):
        send("page", {"user_id": lead_id, "name": "Pricing", "properties": {"path": path}})
    served.wait_for_stage(lead_id, "mql")
    send("track", {"user_id": lead_id, "event": "Quote Requested", "properties": QUOTE})
    assert_journey(served.wait_for_stage(lead_id, "handed_over"))


def test_segment_analytics_python_takes_a_lead_to_sql(served: Served) -> None:
    from segment.analytics import Client

    errors: list[Exception] = []
    client = Client(
        served.write_key,
        host=served.base,
        sync_mode=True,
        max_retries=0,
        on_error=lambda error, _batch: errors.append(error),
    )

    def send(call: str, kwargs: dict[str, Any]) -> None:
        success, _msg = getattr(client, call)(**kwargs)
        assert success and not errors, errors

    python_client_journey(served, "seg-ann", send)  # sync mode: no consumer thread to stop
    assert not errors


def test_rudder_sdk_python_takes_a_lead_to_sql(served: Served) -> None:
    from rudderstack.analytics import Client

    errors: list[Exception] = []
    client = Client(
        served.write_key,
        host=served.base,  # what rudderstack.analytics.dataPlaneUrl sets on its client
        max_retries=0,
        on_error=lambda error, _batch: errors.append(error),
    )
    assert client.gzip  # rudder compresses every batch

    def send(call: str, kwargs: dict[str, Any]) -> None:
        success, _msg = getattr(client, call)(**kwargs)
        assert success
        client.flush()  # waits until the queue is sent
        assert not errors, errors

    try:
        python_client_journey(served, "rudder-ann", send)
    finally:
        client.shutdown()
    assert not errors


def test_rudder_module_level_data_plane_url_is_used(served: Served) -> None:
    """The documented set-up: module attributes ``write_key`` and ``dataPlaneUrl``."""
    import rudderstack.analytics as rudder

    errors: list[Exception] = []
    saved = (rudder.write_key, rudder.dataPlaneUrl, rudder.on_error, rudder.default_client)
    rudder.write_key = served.write_key
    rudder.dataPlaneUrl = served.base
    rudder.on_error = lambda error, _batch: errors.append(error)
    rudder.default_client = None
    try:
        rudder.track("rudder-bob", "Guide Downloaded", {"asset": "seo-checklist"})
        rudder.flush()
    finally:
        if rudder.default_client is not None:
            rudder.default_client.shutdown()
        rudder.write_key, rudder.dataPlaneUrl, rudder.on_error, rudder.default_client = saved
    assert not errors, errors
    lead = served.wait_for_stage("rudder-bob", "nurturing")
    assert [e["type"] for e in lead["recent_events"]] == ["asset_downloaded"]
    assert {r["rule_id"] for r in lead["breakdown"]["rules"]} == {"guides"}


# -- analytics.js in a real browser ------------------------------------------------

PAGE = """<!doctype html>
<html><head><title>{title}</title>
<script src="/analytics-next/index.js"></script>
<script>
  window.ready = AnalyticsNext.AnalyticsBrowser.load(
    {{ writeKey: {write_key!r}, cdnURL: {cdn!r} }},
    {{ retryQueue: false }}
  ).then(([analytics]) => analytics);
</script>
</head><body><h1>{title}</h1></body></html>
"""


class _Site(http.server.BaseHTTPRequestHandler):
    """A tiny site on its own origin: every path is a page that loads analytics.js."""

    def __init__(self, *args: Any, page: str, **kwargs: Any) -> None:
        self.page = page
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        if self.path.startswith("/analytics-next/"):
            name = self.path.removeprefix("/analytics-next/").split("?")[0]
            file = ANALYTICS_UMD / name
            if "/" in name or not file.is_file():
                self.send_error(404)
                return
            body, kind = file.read_bytes(), "text/javascript"
        else:
            title = self.path.strip("/").replace("/", " ") or "home"
            body, kind = self.page.replace("{title}", title).encode(), "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _browser_prerequisites() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)"
    if not (ANALYTICS_UMD / "index.js").is_file():
        where = "npm ci --prefix tests/js"
        if shutil.which("npm") is None:
            return f"no node/npm to install @segment/analytics-next ({where}; .ci/run does)"
        return f"@segment/analytics-next is not installed: run {where} (make test does)"
    return None


@pytest.fixture
def browser() -> None:
    """Skip (fail under CI) before anything starts when Chromium or analytics.js is missing."""
    reason = _browser_prerequisites()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)


@pytest.fixture
def browser_site(browser: None, served: Served) -> Iterator[str]:
    """A site on its own origin whose pages load analytics.js pointed at ``served``."""
    page = PAGE.format(title="{title}", write_key=served.write_key, cdn=served.base)
    handler = functools.partial(_Site, page=page)
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}"
    finally:
        site.shutdown()
        site.server_close()
        thread.join(timeout=5)


SEND = """async ([call, args]) => {
  const analytics = await window.ready;
  const ctx = await analytics[call](...args);
  const failed = ctx.failedDelivery();
  return failed ? String(failed.reason) : null;
}"""


def test_analytics_js_in_chromium_takes_a_lead_to_sql(served: Served, browser_site: str) -> None:
    from playwright.sync_api import sync_playwright

    settings = httpx.get(f"{served.base}/v1/projects/{served.write_key}/settings", timeout=10)
    assert settings.status_code == 200
    segment_io = settings.json()["integrations"]["Segment.io"]
    assert segment_io["apiHost"] == f"127.0.0.1:{served.server.port}/v1"
    unknown = httpx.get(f"{served.base}/v1/projects/nope/settings", timeout=10)
    assert unknown.status_code == 404
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ]
    lead_id = "browser-ann"
    requests: list[str] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=flags
        )
        try:
            tab = context.new_page()
            tab.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
            tab.on("pageerror", lambda e: problems.append(str(e)))

            def send(call: str, *args: Any) -> None:
                failed = tab.evaluate(SEND, [call, list(args)])
                assert failed is None, f"analytics.{call} was not delivered: {failed}"

            tab.goto(f"{browser_site}/services/web-design")
            send("identify", lead_id, TRAITS)
            send("page")  # path and url from the page itself: /services/web-design
            lead = served.wait_for_stage(lead_id, "nurturing")
            assert lead["attributes"]["email"] == "ann@acme.io"
            assert lead["recent_events"][0]["properties"]["path"] == "/services/web-design"
            for path in ("/pricing", "/pricing/plans"):
                tab.goto(f"{browser_site}{path}")  # the user id is kept by analytics.js
                send("page")
            served.wait_for_stage(lead_id, "mql")
            send("track", "Quote Requested", QUOTE)
            lead = served.wait_for_stage(lead_id, "handed_over")
        finally:
            context.close()
    assert not problems, problems
    assert_journey(lead)
    assert {"user_id", "anonymous_id"} <= {i["kind"] for i in lead["identities"]}
    origin = served.base
    assert f"GET {origin}/v1/projects/{served.write_key}/settings" in requests
    posted = {r.removeprefix(f"POST {origin}") for r in requests if r.startswith("POST ")}
    assert posted == {"/v1/i", "/v1/p", "/v1/t"}, requests
