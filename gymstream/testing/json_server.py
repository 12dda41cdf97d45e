"""A small JSON-over-HTTP server on a thread, for the test doubles that answer POSTs.

``JsonServer(answer)`` serves ``POST <any path>`` on 127.0.0.1 (a free port) by calling
``answer(path, body) -> (status, reply)`` with the decoded JSON body and sending ``reply`` as
JSON. HTTP/1.1 keep-alive, one thread per connection, no access log. ``url`` ends in ``/v1``;
``stop()`` shuts it down. Not a production server: a double for OpenAI-compatible endpoints.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Answer", "JsonServer"]

Answer = Callable[[str, dict[str, Any]], tuple[int, Any]]


class JsonServer:
    """Serves ``answer`` until ``stop``; see the module doc."""

    def __init__(self, answer: Answer) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, reply = answer(self.path, body)
                payload = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # stdlib's name
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
