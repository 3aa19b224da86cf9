"""gunicorn's configuration for the portal: ``gunicorn -c python:portal.gunicorn_conf portal.wsgi``.

Every value may be set from the environment (docs/production.md lists them); a bad value stops
start-up naming the variable. What this sets:

- **Request limits**: the request line (method, path, query string), the number of header fields
  and the size of each are bounded. gunicorn refuses an oversize request before the portal's code
  runs; ``portal.gunicorn_errors`` makes those refusals answer in the portal's JSON error format
  (``{"error": {"code", "message", "details"}}``) instead of gunicorn's HTML page.
- **Timeouts**: a worker silent for ``PORTAL_WEB_TIMEOUT`` seconds is killed and replaced; graceful
  restarts wait ``PORTAL_WEB_GRACEFUL_TIMEOUT``; idle keep-alive connections close after
  ``PORTAL_WEB_KEEPALIVE``.
- **Workers**: ``PORTAL_WEB_WORKERS`` processes (default 2 × CPUs + 1, at most 8), each with
  ``PORTAL_WEB_THREADS`` threads (gthread worker when more than 1).
- **Logs**: gunicorn's own messages and its access log are JSON lines like the portal's
  (``portal.observability.JsonLineFormatter``); ``PORTAL_LOG_FORMAT=plain`` gives text.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured
from gunicorn.glogging import Logger

from portal import gunicorn_errors
from portal.envvars import _read


def _int(name: str, default: int, low: int, high: int) -> int:
    value = _read(name, int, default)
    if not low <= value <= high:
        raise ImproperlyConfigured(f"{name} must be between {low} and {high}, got {value}")
    return value


# --- where and how many -------------------------------------------------------------------------
bind = [item.strip() for item in _read("PORTAL_BIND", str, "127.0.0.1:8000").split(",") if item.strip()]
workers = _int("PORTAL_WEB_WORKERS", min(2 * (os.cpu_count() or 1) + 1, 8), 1, 64)
threads = _int("PORTAL_WEB_THREADS", 1, 1, 64)
worker_class = "gthread" if threads > 1 else "sync"
# Recycle workers now and then (with jitter, so they do not all restart together).
max_requests = _int("PORTAL_WEB_MAX_REQUESTS", 2000, 0, 10_000_000)
max_requests_jitter = max_requests // 10
wsgi_app = "portal.wsgi:application"

# --- timeouts -------------------------------------------------------------------------------------
timeout = _int("PORTAL_WEB_TIMEOUT", 30, 5, 3600)
graceful_timeout = _int("PORTAL_WEB_GRACEFUL_TIMEOUT", 30, 1, 3600)
keepalive = _int("PORTAL_WEB_KEEPALIVE", 5, 0, 300)

# --- request limits (gunicorn answers these itself, before Django) ---------------------------------
# The request line: 4094 bytes lets a filter URL with a long search through and stops abuse (gunicorn
# allows at most 8190). Header fields: 100 of at most 8190 bytes each (cookies and bearer tokens fit).
limit_request_line = _int("PORTAL_LIMIT_REQUEST_LINE", 4094, 256, 8190)
limit_request_fields = _int("PORTAL_LIMIT_REQUEST_FIELDS", 100, 10, 32768)
limit_request_field_size = _int("PORTAL_LIMIT_REQUEST_FIELD_SIZE", 8190, 1024, 65536)

# --- behind the TLS proxy ---------------------------------------------------------------------------
# Django decides https from X-Forwarded-Proto (DJANGO_BEHIND_PROXY); gunicorn only needs to accept
# the header from the proxy's address (comma-separated; "*" when the proxy's address is not fixed
# and gunicorn is reachable only from it).
forwarded_allow_ips = _read("PORTAL_FORWARDED_ALLOW_IPS", str, "127.0.0.1,::1")

# --- logs --------------------------------------------------------------------------------------------
_format = _read("PORTAL_LOG_FORMAT", str, "json").strip().lower()
if _format not in {"json", "plain"}:
    raise ImproperlyConfigured(f"PORTAL_LOG_FORMAT must be json or plain, got {_format!r}")
accesslog = _read("PORTAL_ACCESS_LOG", str, "-") or None  # "-" is standard output; empty turns it off
errorlog = "-"
loglevel = _read("PORTAL_LOG_LEVEL", str, "INFO").strip().lower()


class PortalGunicornLogger(Logger):
    """gunicorn's access log as one JSON line per request: the path without its query string (which
    may carry what people searched for), the status, bytes, time and the portal's request id."""

    def access(self, resp, req, environ, request_time):
        if not self.cfg.accesslog:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        headers = dict((name.lower(), value) for name, value in (resp.headers or []))
        fields = {
            "remote": environ.get("REMOTE_ADDR", "-"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(status) if str(status).isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            "user_agent": environ.get("HTTP_USER_AGENT", "-")[:200],
        }
        if headers.get("x-request-id"):
            fields["request_id"] = headers["x-request-id"]
        try:
            self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields)
        except Exception:  # noqa: BLE001 - as gunicorn's own access(): a log failure never fails the request
            self.exception("access log failed")


logger_class = PortalGunicornLogger
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "portal.observability.JsonLineFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": _format, "stream": "ext://sys.stdout"},
        "stderr": {"class": "logging.StreamHandler", "formatter": _format, "stream": "ext://sys.stderr"},
    },
    "root": {"level": loglevel.upper(), "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
}

# Refusals gunicorn writes itself (oversize request line or headers, malformed requests) answer in
# the portal's JSON error format.
gunicorn_errors.install()
