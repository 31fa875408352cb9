"""A webhook receiver for the tests: an HTTP server on loopback, in a thread,
that keeps every request it receives (headers and raw body) and answers
204. It can hold a request open, to catch a delivery in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._hold: Callable[[bytes], bool] | None = None
        #: set when a held request has arrived; the request waits for ``release``
        self.holding = threading.Event()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver._keep(Received(self.path, dict(self.headers.items()), body))
                if receiver._take_hold(body):
                    receiver.holding.set()
                    receiver._release.wait(60)
                try:
                    self.send_response(204)
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed while it waited)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _keep(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _take_hold(self, body: bytes) -> bool:
        with self._lock:
            if self._hold is None or not self._hold(body):
                return False
            self._hold = None
            return True

    def hold_next(self, where: Callable[[bytes], bool]) -> None:
        """Keep the next request whose body satisfies ``where`` waiting
        (unanswered) until :meth:`release`."""
        with self._lock:
            self._release.clear()
            self.holding.clear()
            self._hold = where

    def release(self) -> None:
        self._release.set()

    def bodies(self, where: Callable[[Received], bool] = lambda _r: True) -> list[bytes]:
        with self._lock:
            return [r.body for r in self.received if where(r)]

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)
