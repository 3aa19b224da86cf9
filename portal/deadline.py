"""A wall-clock deadline for outbound calls: connect, send and the whole answer, together.

``requests``' ``timeout`` bounds each socket operation, not the call: a receiver that sends its
headers and then one byte a second keeps a call alive forever. Inside ``with Deadline(seconds):``

* every connection the portal opens (``portal.outbound`` sessions, ``guard()``-ed libraries, and
  sessions with ``adapter()`` mounted) is watched; when the deadline passes, a watchdog shuts the
  watched sockets down, so whatever blocks on them (a connect, a send, a header or body read) ends
  at once with an error;
* ``bounded(timeout)`` gives the per-operation timeout to pass to ``requests``: never beyond what is
  left of the deadline (which also bounds a connect, before any socket is watched);
* ``expired`` tells the caller afterwards that the call was cut off, so it records the attempt as
  abandoned at its deadline rather than as whatever error the cut produced.

Shutting a socket down acts on the connection itself, so a duplicate of the descriptor is watched:
TLS wrapping (which detaches the original socket object) does not escape it.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
import time

from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("portal_deadline", default=None)

MINIMUM_TIMEOUT = 0.05  # seconds: a per-operation timeout is never zero (zero means non-blocking)


class Deadline:
    """``with Deadline(seconds) as deadline:`` — every watched connection ends by ``seconds``."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("A deadline must be positive.")
        self.seconds = float(seconds)
        self.ends_at = time.monotonic() + self.seconds
        self.expired = False
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self._token: contextvars.Token | None = None

    def remaining(self) -> float:
        return max(0.0, self.ends_at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        try:
            copy = sock.dup()
        except OSError:
            return
        with self._lock:
            self._watched.append(copy)
            expired = self.expired
        if expired:
            _shut(copy)

    def cut(self) -> None:
        """End every watched connection now (the caller lost the right to continue, e.g. its lease)."""
        self._expire()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            watched = list(self._watched)
        for sock in watched:
            _shut(sock)

    def __enter__(self) -> Deadline:
        self.ends_at = time.monotonic() + self.seconds
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._token is not None:
            _current.reset(self._token)
        with self._lock:
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its owner
        sock.shutdown(socket.SHUT_RDWR)


def current() -> Deadline | None:
    return _current.get()


def watch(sock: socket.socket) -> None:
    """Put ``sock`` under the current deadline, if there is one (called where connections open)."""
    deadline = _current.get()
    if deadline is not None:
        deadline.watch(sock)


def bounded(timeout: float) -> float:
    """``timeout`` for one socket operation, cut to what is left of the current deadline."""
    deadline = _current.get()
    if deadline is None:
        return timeout
    return max(MINIMUM_TIMEOUT, min(timeout, deadline.remaining()))


# --- sessions that do not go through portal.outbound (fixed API hosts from settings) --------------


class _WatchedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        watch(sock)
        return sock


class WatchedHTTPConnection(_WatchedConnectionMixin, HTTPConnection):
    pass


class WatchedHTTPSConnection(_WatchedConnectionMixin, HTTPSConnection):
    pass


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """A requests transport adapter whose connections are watched by the current deadline."""

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = PoolManager(num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": WatchedHTTPConnectionPool,
            "https": WatchedHTTPSConnectionPool,
        }


def adapter() -> WatchedAdapter:
    return WatchedAdapter()
