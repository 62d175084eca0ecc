"""A local web hook that records what it receives: the endpoint of ``json://`` alerts."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HookServer:
    """Records every JSON body POSTed to it; :meth:`down` and :meth:`up` stop and restart it
    on the same port (connections are refused meanwhile)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook/s3cr3t-token"

    def up(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with hook._lock:
                    hook.received.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def alerts(self, event: str | None = None) -> list[dict[str, str]]:
        """The facts of each alert received (``name: value`` lines), of ``event`` if given."""
        with self._lock:
            bodies = list(self.received)
        facts = [
            dict(
                line.split(": ", 1) for line in body.get("message", "").splitlines() if ": " in line
            )
            for body in bodies
        ]
        return [f for f in facts if event is None or f.get("event") == event]

    def wait_for(
        self, count: int, timeout: float, event: str | None = None
    ) -> list[dict[str, str]]:
        """The alerts once ``count`` arrived (or the timeout passed), after a moment in which a
        duplicate would have arrived too."""
        deadline = time.monotonic() + timeout
        while len(self.alerts(event)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        return self.alerts(event)
