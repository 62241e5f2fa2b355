"""`leadgate keys create` and `leadgate serve` as a real process, over real HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CLI = [sys.executable, "-c", "from leadgate.cli import main; main()"]


def _leadgate(*args: str) -> str:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    url = f"sqlite:///{tmp_path / 'lg.db'}"
    write = _leadgate("keys", "create", "--kind", "write", "--database-url", url)
    admin = _leadgate("keys", "create", "--kind", "admin", "--database-url", url)
    write_key, admin_key = write.strip().splitlines()[-1], admin.strip().splitlines()[-1]
    port = _free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--database-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                httpx.get(f"{base}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base, write_key, admin_key
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_keys_are_printed_alone_on_the_last_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    lines = _leadgate("keys", "create", "--kind", "admin", "--database-url", url).splitlines()
    assert len(lines[-1]) >= 20 and " " not in lines[-1]
    assert "created admin key" in lines[0]


def test_a_served_lead_reaches_sql_over_http(server: tuple[str, str, str]) -> None:
    base, write_key, admin_key = server
    pages = [
        {"type": "page", "userId": "u1", "messageId": f"m{i}", "properties": {"path": "/pricing"}}
        for i in (1, 2)
    ]
    batch = {
        "batch": [
            {"type": "identify", "userId": "u1", "messageId": "m0",
             "traits": {"email": "Ann@Acme.io", "title": "Founder", "company_size": 40}},
            *pages,
            {"type": "track", "userId": "u1", "event": "Quote Requested", "messageId": "m3",
             "properties": {"message": "Could you quote a new site?"}},
        ]
    }  # fmt: skip
    answer = httpx.post(f"{base}/v1/batch", json=batch, auth=(write_key, ""), timeout=10)
    assert answer.status_code == 200, answer.text
    wrong = httpx.post(f"{base}/v1/batch", json=batch, auth=("wrong", ""), timeout=10)
    assert wrong.status_code == 401
    admin = {"Authorization": f"Bearer {admin_key}"}
    lead = httpx.get(f"{base}/api/leads/u1", headers=admin, timeout=10)
    assert lead.status_code == 200, lead.text
    body = lead.json()
    assert body["attributes"]["email"] == "ann@acme.io"
    assert "lead u1: SQL" in str(body)
    writer = {"Authorization": f"Bearer {write_key}"}
    assert httpx.get(f"{base}/api/leads/u1", headers=writer, timeout=10).status_code == 403


def test_serve_demo_loads_leads_in_every_stage_and_prints_working_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    port = _free_port()
    args = ["serve", "--demo", "--demo-leads", "300", "--port", str(port), "--database-url", url]
    args += ["--demo-mail-port", str(_free_port()), "--demo-webhook-port", str(_free_port())]
    proc = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the server prints its address last, once listening
            lines.append(line)
            if line.startswith("leadgate listening on"):
                break
        printed = "".join(lines)
        assert f"http://127.0.0.1:{port}" in printed, printed
        admin_key = next(x.split()[-1] for x in lines if x.startswith("demo admin key"))
        write_key = next(x.split()[-1] for x in lines if x.startswith("demo write key"))
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                httpx.get(f"{base}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        admin = {"Authorization": f"Bearer {admin_key}"}
        for stage in ("nurturing", "mql", "handed_over", "disqualified"):
            listed = httpx.get(f"{base}/api/leads", params={"stage": stage}, headers=admin)
            assert listed.status_code == 200, listed.text
            assert listed.json()["items"], f"no demo lead in {stage}"
        sent = httpx.post(
            f"{base}/v1/track",
            json={"userId": "newcomer", "event": "Guide Downloaded", "properties": {}},
            auth=(write_key, ""),
        )
        assert sent.status_code == 200 and sent.json()["stored"] == 1
        # A warm lead asks for a quote: handed over, its rep emailed, a signed webhook.
        warm = httpx.get(f"{base}/api/leads", params={"stage": "mql"}, headers=admin)
        lead_id = warm.json()["items"][0]["id"]
        mails_before = len(list((tmp_path / "out/demo/mail").glob("*.eml")))
        quote = {"userId": lead_id, "event": "Quote Requested", "messageId": "t-quote",
                 "properties": {"message": "Could you quote a new website?"}}  # fmt: skip
        asked = time.monotonic()
        assert httpx.post(f"{base}/v1/track", json=quote, auth=(write_key, "")).status_code == 200
        handover = httpx.get(f"{base}/api/handovers", headers=admin, params={"limit": 1000})
        [mine] = [h for h in handover.json()["items"] if h["lead_id"] == lead_id]
        assert mine["rep_id"] and mine["status"] == "open" and mine["due_at"]
        inbox = tmp_path / "out/demo/webhooks.jsonl"

        def assigned() -> list[dict[str, Any]]:
            hooks = [json.loads(line) for line in inbox.read_text().splitlines()]
            return [
                h
                for h in hooks
                if h["event"] == "handover.assigned" and h["body"]["data"]["lead"]["id"] == lead_id
            ]

        while time.monotonic() - asked < 10 and not assigned():
            time.sleep(0.05)
        [hook] = assigned()
        assert hook["signature"] == "valid"
        while time.monotonic() - asked < 10:
            mails = sorted((tmp_path / "out/demo/mail").glob("*.eml"))
            if len(mails) > mails_before:
                break
            time.sleep(0.05)
        assert lead_id in mails[-1].read_text(encoding="utf-8", errors="replace")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    # A second start on the same database loads nothing more; a port in use is refused
    # before anything is loaded.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        refused = subprocess.run(
            [*CLI, "serve", "--demo", "--port", busy, "--database-url", url],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert refused.returncode == 2 and f"cannot listen on 127.0.0.1:{busy}" in refused.stderr
    assert "listening" not in refused.stdout
    args[args.index("--port") + 1] = str(_free_port())
    again = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path
    )
    try:
        assert again.stdout is not None
        printed = []
        for line in again.stdout:
            printed.append(line)
            if line.startswith("leadgate listening on"):
                break
        assert any("already holds leads" in line for line in printed), printed
    finally:
        again.terminate()
        again.wait(timeout=10)
        if again.stdout is not None:
            again.stdout.close()


def test_rescore_command_reports_what_it_did(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"type": "page", "userId": "u1", "messageId": "p1", '
        '"timestamp": "2026-01-01T00:00:00Z", "properties": {"path": "/pricing"}}\n',
        encoding="utf-8",
    )
    _leadgate("import", "--events", str(events), "--database-url", url, "--at", "2026-01-02")
    done = _leadgate("rescore", "--database-url", url, "--at", "2026-06-01")
    assert "rescored 1 leads" in done and "1 scores changed" in done  # decay over 5 months
    again = _leadgate("rescore", "--database-url", url, "--at", "2026-06-01")
    assert "0 scores changed" in again


def test_a_mistyped_database_is_refused_and_passwords_are_not_shown(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'typo.db'}"
    for args in (["rescore"], ["handovers", "list"]):
        done = subprocess.run(
            [*CLI, *args, "--database-url", missing], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2 and "no database at" in done.stderr
    assert not (tmp_path / "typo.db").exists()
    refused = subprocess.run(
        [*CLI, "rescore", "--database-url", "postgresql://me:s3cret@127.0.0.1:1/db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "cannot open" in refused.stderr
    assert "s3cret" not in refused.stderr + refused.stdout
