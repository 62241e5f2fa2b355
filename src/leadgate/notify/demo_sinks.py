"""Local stand-ins for a mail server and a CRM, so the demo shows its notifications.

``leadgate serve --demo`` starts both unless real ones are configured: a mail
catcher (a real SMTP server, aiosmtpd) that keeps each email as an ``.eml``
file, and a webhook inbox (a real HTTP server) that verifies each delivery's
signature and keeps it as a JSON line. They are for looking at, not for
production.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from leadgate.notify.webhook import SignatureError, verify_signature


class _KeepMail:
    """aiosmtpd handler: each message becomes ``<n>.eml`` in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = threading.Lock()
        self.count = len(list(folder.glob("*.eml")))

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
            name = f"{self.count:05d}.eml"
        content = envelope.original_content or envelope.content
        data = content if isinstance(content, bytes) else str(content).encode("utf-8")
        (self.folder / name).write_bytes(data)
        return "250 Message accepted for delivery"


class MailCatcher:
    """A local SMTP server keeping every email it receives in ``folder``."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 8025) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.host, self.port = folder, host, port
        self.controller = Controller(_KeepMail(folder), hostname=host, port=port)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> MailCatcher:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


class WebhookInbox:
    """A local HTTP receiver that checks each webhook's signature and appends it to
    ``path`` (JSON lines: when, event, idempotency key, signature check, body)."""

    def __init__(self, path: Path, secret: str, host: str = "127.0.0.1", port: int = 8026) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.secret = path, secret
        self.lock = threading.Lock()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    verify_signature(inbox.secret, self.headers.get("Leadgate-Signature"), body)
                    check = "valid"
                except SignatureError as exc:
                    check = f"invalid: {exc}"
                inbox.keep(
                    {
                        "received_at": time.time(),
                        "event": self.headers.get("Leadgate-Event"),
                        "idempotency_key": self.headers.get("Idempotency-Key"),
                        "signature": check,
                        "body": json.loads(body or b"null"),
                    }
                )
                self.send_response(200 if check == "valid" else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def keep(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line)

    def start(self) -> WebhookInbox:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
