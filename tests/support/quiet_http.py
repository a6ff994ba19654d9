"""A threading HTTP server for test servers that keeps handler errors off stderr.

The standard server prints a traceback to `sys.stderr` when a handler fails, from its own thread and at
any time. A client that gives up (the timeout tests do, on purpose) makes the handler's write fail with a
broken pipe, and that traceback would land in whatever stderr a later test is capturing. Such client
disconnects are expected and dropped; any other handler error is kept in `errors` for a test to check.
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer

_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.errors: list[BaseException] = []

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, _CLIENT_GONE):
            self.errors.append(error)
