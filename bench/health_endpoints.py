"""Fake instances for benchmarking the health checks: one local HTTP server, many hosts.

The behaviour of a request is chosen by the prefix of its ``Host`` header,
so one server on 127.0.0.1 stands for any number of instances:

* ``up-*``: 200 at once (a small body, keep-alive);
* ``slow-*``: 200 after ``slow_seconds`` (a hanging instance);
* ``dead-*``: the connection is reset without any response;
* ``err-*``: 500;
* anything else: 404.

The server starts one thread per connection and listens with a backlog of
:data:`BACKLOG`, so a thousand concurrent clients are not refused (the
kernel caps the backlog at ``net.core.somaxconn``).  :func:`stop` also
releases the ``slow-*`` requests still waiting.

Importable (``start``/``stop``) or runnable::

    python3 bench/health_endpoints.py [PORT] [SLOW_SECONDS]
"""

import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BACKLOG = 1024
DEFAULT_SLOW_SECONDS = 30


class Handler(BaseHTTPRequestHandler):
    """Answers by ``Host`` prefix (see the module docstring)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a client's session would use it

    def do_GET(self):
        host = (self.headers.get("Host") or "").lower()
        if host.startswith("dead-"):
            self.server.reset(self.connection)
            self.close_connection = True
            return
        if host.startswith("slow-"):
            if self.server.stopping.wait(self.server.slow_seconds):
                self.close_connection = True
                return
            self._answer(200, b"slow but ok\n")
        elif host.startswith("up-"):
            self._answer(200, b"ok\n")
        elif host.startswith("err-"):
            self._answer(500, b"internal error\n")
        else:
            self._answer(404, b"unknown host\n")

    do_HEAD = do_GET

    def _answer(self, status, body):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client gave up (timeout): nothing to answer to
            self.close_connection = True

    def log_message(self, format, *args):
        """Silent: a thousand requests a run would flood the terminal."""


class Server(ThreadingHTTPServer):
    """A threading HTTP server with a deep backlog and a way to reset connections."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address, slow_seconds=DEFAULT_SLOW_SECONDS):
        self.slow_seconds = slow_seconds
        self.stopping = threading.Event()
        self._resets = set()
        self._resets_lock = threading.Lock()
        super().__init__(address, Handler)

    def reset(self, connection):
        """Have ``connection`` closed with a TCP reset instead of a FIN."""
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._resets_lock:
            self._resets.add(connection)

    def shutdown_request(self, request):
        with self._resets_lock:
            reset = request in self._resets
            self._resets.discard(request)
        if reset:
            self.close_request(request)  # no shutdown(SHUT_WR): that would send a FIN first
        else:
            super().shutdown_request(request)


def start(port=0, slow_seconds=DEFAULT_SLOW_SECONDS):
    """Serve on 127.0.0.1:``port`` (0: any free port) in a daemon thread.

    Returns ``(server, thread, port)``; the port is the one actually bound.
    """
    server = Server(("127.0.0.1", port), slow_seconds=slow_seconds)
    thread = threading.Thread(target=server.serve_forever, name="health-endpoints",
                              daemon=True)
    thread.start()
    return server, thread, server.server_address[1]


def stop(server):
    """Stop serving, release waiting ``slow-*`` requests and close the listening socket."""
    server.stopping.set()
    server.shutdown()
    server.server_close()


def main(argv):
    port = int(argv[1]) if len(argv) > 1 else 0
    slow = float(argv[2]) if len(argv) > 2 else DEFAULT_SLOW_SECONDS  # noqa: PLR2004
    server, thread, port = start(port, slow)
    print("serving on http://127.0.0.1:%d/ (Host: up-*, slow-* %gs, dead-*, err-*); "
          "Ctrl-C stops" % (port, slow))
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        stop(server)


if __name__ == "__main__":
    main(sys.argv)
