"""Production serving: static files (WhiteNoise), logs (JSON lines), request ids, health, metrics.

Pulled into ``portal/settings.py`` with one star import; every value comes from the environment
through ``portal.envvars`` (a bad value stops start-up naming the variable). docs/production.md
explains each setting; the README's *Configuration* table lists them.
"""

from __future__ import annotations

import ipaddress
import os

from django.core.exceptions import ImproperlyConfigured
from whitenoise.compress import Compressor

from portal.envvars import _bool, _positive_int, _read, _secret

__all__ = [
    "LOGGING",
    "PORTAL_LOG_FORMAT",
    "PORTAL_METRICS_ALLOWED_NETWORKS",
    "PORTAL_METRICS_TOKEN",
    "PORTAL_READYZ_BEAT_MAX_AGE_SECONDS",
    "PORTAL_READYZ_REQUIRE_BEAT",
    "PORTAL_TRUST_REQUEST_ID",
    "PRODUCTION_MIDDLEWARE",
    "STORAGES",
    "WHITENOISE_MAX_AGE",
    "WHITENOISE_SKIP_COMPRESS_EXTENSIONS",
]

_DEBUG = _bool("DJANGO_DEBUG", False)
_TESTING = "PYTEST_VERSION" in os.environ

# --- Static files ----------------------------------------------------------------------------
# WhiteNoise serves var/staticfiles (``manage.py collectstatic``) from every gunicorn process:
# hashed names (``portal.3f2a….css``) cached for a year, gzip and Brotli copies made at collect time.
# In `make run` (DEBUG) and under pytest the files are found in place, unhashed; the production
# storage is exercised by tests/portal/test_production.py, which collects and serves as production does.
_MANIFEST = not _DEBUG and not _TESTING
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if _MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Hashed names never change content: a year. (WhiteNoise gives unhashed names 60 s.)
WHITENOISE_MAX_AGE = _read("PORTAL_STATIC_MAX_AGE_SECONDS", int, 365 * 24 * 3600)
if WHITENOISE_MAX_AGE < 0:
    raise ImproperlyConfigured(f"PORTAL_STATIC_MAX_AGE_SECONDS must not be negative, got {WHITENOISE_MAX_AGE}")

# Source maps (megabytes, fetched only by a developer's browser tools) are served uncompressed:
# compressing them would make up most of collectstatic's time.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = (*Compressor.SKIP_COMPRESS_EXTENSIONS, "map")

# Inserted right after SecurityMiddleware (settings.MIDDLEWARE): the request id first, so every log
# line of the request carries it; then WhiteNoise, which answers static files before sessions etc.
PRODUCTION_MIDDLEWARE = [
    "portal.observability.RequestIdMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
]
# Accept the proxy's X-Request-ID (when it is a plain token of 8-128 characters) instead of making
# one; on by default behind a proxy (DJANGO_BEHIND_PROXY), which is what sets the header.
PORTAL_TRUST_REQUEST_ID = _bool("PORTAL_TRUST_REQUEST_ID", _bool("DJANGO_BEHIND_PROXY", False))

# --- Logs --------------------------------------------------------------------------------------
# One JSON object per line in production (request id, actor, request/delivery ids); plain text in
# `make run`. Secrets never reach a log line: the formatter drops fields whose names look secret.
PORTAL_LOG_FORMAT = _read("PORTAL_LOG_FORMAT", str, "plain" if _DEBUG or _TESTING else "json").strip().lower()
if PORTAL_LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"PORTAL_LOG_FORMAT must be json or plain, got {PORTAL_LOG_FORMAT!r}")
_LOG_LEVEL = _read("PORTAL_LOG_LEVEL", str, "INFO").strip().upper()
if _LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"PORTAL_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {_LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "portal.observability.LogContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "portal.observability.JsonLineFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": PORTAL_LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": _LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django logs each 4xx/5xx itself; the request middleware logs every request once instead.
        "django.server": {"level": "WARNING"},
    },
}

# --- Health ------------------------------------------------------------------------------------
# /readyz answers 503 when no periodic job started within this many seconds (beat or every worker
# down): the sweeper runs every 5 s, so two minutes means beat has stopped.
PORTAL_READYZ_REQUIRE_BEAT = _bool("PORTAL_READYZ_REQUIRE_BEAT", True)
PORTAL_READYZ_BEAT_MAX_AGE_SECONDS = _positive_int("PORTAL_READYZ_BEAT_MAX_AGE_SECONDS", 120)

# --- Metrics -----------------------------------------------------------------------------------
# /metrics (Prometheus text format) is denied unless a bearer token or an allowed network is set.
PORTAL_METRICS_TOKEN = (_secret("PORTAL_METRICS_TOKEN", "") or "").strip()
if PORTAL_METRICS_TOKEN and len(PORTAL_METRICS_TOKEN) < 24:
    raise ImproperlyConfigured("PORTAL_METRICS_TOKEN (or _FILE) must be at least 24 characters long")
try:
    PORTAL_METRICS_ALLOWED_NETWORKS = [
        str(ipaddress.ip_network(item.strip(), strict=False))
        for item in _read("PORTAL_METRICS_ALLOWED_NETWORKS", list, [])
        if item.strip()
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"PORTAL_METRICS_ALLOWED_NETWORKS has an invalid network: {exc}") from exc
