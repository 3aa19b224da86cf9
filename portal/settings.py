"""Settings for the deployment authorization portal.

One module for every run mode, driven by environment variables (see README "Configuration").
A bad value stops start-up with ``ImproperlyConfigured`` naming the variable. Secrets may also
be given as ``NAME_FILE`` pointing at a file that holds the value.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from portal.conf.access import *  # noqa: F403
from portal.conf.delivery import *  # noqa: F403
from portal.conf.evidence import *  # noqa: F403
from portal.conf.identity import *  # noqa: F403
from portal.conf.production import *  # noqa: F403
from portal.envvars import _bool, _positive_int, _read, _secret, _url
from portal.outbound import parse_allow_list

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))

# pytest sets PYTEST_VERSION for the whole session; tests get fast hashing and eager tasks.
TESTING = "PYTEST_VERSION" in os.environ

env = environ.Env()


DEBUG = _bool("DJANGO_DEBUG", False)

SECRET_KEY = _secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if DEBUG or TESTING:
        SECRET_KEY = "insecure-development-key-only-for-make-run-and-tests-0123456789abcdef"
    else:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when DJANGO_DEBUG is off")

ALLOWED_HOSTS = _read("DJANGO_ALLOWED_HOSTS", list, ["localhost", "127.0.0.1", "[::1]", "testserver"])
PORTAL_BASE_URL = _url("PORTAL_BASE_URL", "http://127.0.0.1:8000")
CSRF_TRUSTED_ORIGINS = _read("DJANGO_CSRF_TRUSTED_ORIGINS", list, [PORTAL_BASE_URL])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "auditlog",
    "axes",
    "django_celery_beat",
    "csp",
    "compliance",
    "deployments",
]
# CI/SCM integrations (deployments/integrations/<name>/), each a Django app that plugs into the gate's
# registries; the portal runs without any of them (the generic signed webhook and polling remain).
INTEGRATIONS = {
    "github": "deployments.integrations.github",
    "gitlab": "deployments.integrations.gitlab",
    "jenkins": "deployments.integrations.jenkins",
}
PORTAL_INTEGRATIONS = [name.strip() for name in _read("PORTAL_INTEGRATIONS", list, list(INTEGRATIONS)) if name.strip()]
_unknown_integrations = sorted(set(PORTAL_INTEGRATIONS) - set(INTEGRATIONS))
if _unknown_integrations:
    raise ImproperlyConfigured(
        f"PORTAL_INTEGRATIONS names unknown integration(s) {', '.join(_unknown_integrations)}; "
        f"known: {', '.join(INTEGRATIONS)}"
    )
INSTALLED_APPS += [INTEGRATIONS[name] for name in PORTAL_INTEGRATIONS]
INSTALLED_APPS += IDENTITY_APPS  # noqa: F405 (django-allauth: sign-in, SSO, MFA; portal/conf/identity.py)

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    *PRODUCTION_MIDDLEWARE,  # noqa: F405  request id, then WhiteNoise (portal/conf/production.py)
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Query strings with control characters (a NUL in a filter) answer 400 before any view runs.
    "portal.middleware.RejectControlCharactersMiddleware",
    "portal.middleware.ProductNotFoundMiddleware",  # the portal's 404 page in DEBUG too (staff get Django's)
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    # AxesMiddleware must be last: it turns lockouts into a clear 429 page.
    "axes.middleware.AxesMiddleware",
]
MIDDLEWARE[-1:-1] = IDENTITY_MIDDLEWARE  # noqa: F405 (allauth, the MFA requirement; axes stays last)

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"
AUTH_USER_MODEL = "compliance.User"
LOGIN_URL = "login"  # allauth's sign-in page (portal/urls.py keeps the name)
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
                "portal.context_processors.navigation",
                "compliance.context_processors.training",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
_database_url = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")
if _database_url.split("://", 1)[0] not in {"sqlite", "postgres", "postgresql", "pgsql"}:
    raise ImproperlyConfigured(
        f"DATABASE_URL must be a sqlite:/// or postgres:// URL, got scheme {_database_url.split('://', 1)[0]!r}"
    )
try:
    DATABASES = {"default": env.db_url_config(_database_url)}
except (ImproperlyConfigured, ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A worker and the web process share the file in `make run`: wait for locks, don't fail.
    # IMMEDIATE transactions serialize writers the way row locks do on PostgreSQL; WAL lets readers go on.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = _read("DATABASE_CONN_MAX_AGE", int, 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication -------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "compliance.identity.backends.PortalAuthenticationBackend",  # passwords unless PORTAL_LOCAL_PASSWORDS=0
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

GUARDIAN_ANONYMOUS_USER_NAME = None
ANONYMOUS_USER_NAME = None

AXES_FAILURE_LIMIT = _positive_int("PORTAL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=_positive_int("PORTAL_LOGIN_COOLOFF_MINUTES", 15))
# Two throttles: a username from one address (PORTAL_LOGIN_FAILURE_LIMIT), and one address whatever
# the usernames (password spraying, PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT). Axes has one limit for all
# parameters; compliance.people.signin.PortalAxesHandler applies each its own, and a successful sign-in
# clears only that person's counter, never the address's.
PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT = _positive_int("PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT", 20)
if PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT < AXES_FAILURE_LIMIT:
    raise ImproperlyConfigured(
        "PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT must not be lower than PORTAL_LOGIN_FAILURE_LIMIT "
        f"({PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT} < {AXES_FAILURE_LIMIT})"
    )
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "compliance.people.signin.PortalAxesHandler"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# Sign-in records are evidence: axes would otherwise delete a username's oldest failure records
# beyond 1,000 (an attacker could flush them by failing on purpose).
AXES_ACCESS_FAILURE_LOG_PER_USER_LIMIT = 2**62

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = _bool("DJANGO_SECURE_COOKIES", not DEBUG and not TESTING)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = _positive_int("PORTAL_SESSION_AGE_SECONDS", 8 * 3600)
SECURE_SSL_REDIRECT = _bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG and not TESTING)
SECURE_HSTS_SECONDS = _read("DJANGO_SECURE_HSTS_SECONDS", int, 0 if DEBUG or TESTING else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = _bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): nothing inline, nothing from elsewhere. Scripts are static
# files (htmx is vendored); the API docs page loads its initialisation script from its own URL.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
if _bool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The health and metrics endpoints are probed over plain HTTP by load balancers.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# --- Internationalisation and static files ---------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = _read("PORTAL_TIME_ZONE", str, "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise serves it (filled by collectstatic; empty in make run and tests)

# --- E-mail ---------------------------------------------------------------------------------
try:
    vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
except (ImproperlyConfigured, ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"EMAIL_URL is not a valid e-mail URL: {exc}") from exc
DEFAULT_FROM_EMAIL = _read("PORTAL_FROM_EMAIL", str, "deployment-portal@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = 10

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = _read("CELERY_BROKER_URL", str, "filesystem://")
_broker_scheme = CELERY_BROKER_URL.split("://", 1)[0]
if _broker_scheme not in {"filesystem", "redis", "rediss", "amqp", "amqps", "memory"}:
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL must use filesystem://, redis://, rediss://, amqp:// or memory://, "
        f"got {CELERY_BROKER_URL.split('://', 1)[0]!r}"
    )
if _broker_scheme == "filesystem":
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = _bool("CELERY_TASK_ALWAYS_EAGER", TESTING)
CELERY_TASK_EAGER_PROPAGATES = True
# The database scheduler, re-asserting CELERY_BEAT_SCHEDULE (enabled) at start (compliance/monitoring/beat.py).
CELERY_BEAT_SCHEDULER = "compliance.monitoring.beat:PortalScheduler"
CELERY_TIMEZONE = TIME_ZONE
# The portal's own periodic jobs, assigned once; integrations add theirs through portal.schedule.
CELERY_BEAT_SCHEDULE = {
    "expire-due-requests": {"task": "deployments.expire_due_requests", "schedule": 60.0},
    # Often enough that an attempt whose worker died is retried within ~15 s (lease 10 s + sweep 5 s).
    "sweep-decision-deliveries": {"task": "deployments.sweep_deliveries", "schedule": 5.0},
    "enforce-training": {"task": "compliance.enforce_training", "schedule": 3600.0},
    "send-notification-reminders": {"task": "deployments.send_notification_reminders", "schedule": 300.0},
    "seal-audit-chain": {"task": "compliance.seal_audit_chain", "schedule": 60.0},
    "verify-audit-chain": {"task": "compliance.verify_audit_chain", "schedule": 24 * 3600.0},
    "email-audit-checkpoint": {"task": "compliance.email_audit_checkpoint", "schedule": 24 * 3600.0},
    "escalate-overdue-violations": {"task": "compliance.escalate_overdue_violations", "schedule": 300.0},
    "reconcile-deployments": {"task": "deployments.reconcile_deployments", "schedule": 900.0},
    "check-job-heartbeats": {"task": "compliance.check_job_heartbeats", "schedule": 300.0},
    "expire-access-grants": {"task": "compliance.expire_access_grants", "schedule": 300.0},
}

# --- Portal behaviour -----------------------------------------------------------------------
# Outbound timeouts, the total deadline and the delivery lease: portal/conf/delivery.py.
# Publishing to the broker after a commit: one attempt, this connect/socket timeout, then the
# sweeper's turn (portal/enqueue.py), so a broker outage never slows a decision.
PORTAL_ENQUEUE_TIMEOUT_SECONDS = _read("PORTAL_ENQUEUE_TIMEOUT_SECONDS", float, 1.0)
PORTAL_MAX_BODY_BYTES = _positive_int("PORTAL_MAX_BODY_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = PORTAL_MAX_BODY_BYTES
# Decision delivery (outbox): retry budget and backoff, in seconds.
PORTAL_DELIVERY_MAX_ATTEMPTS = _positive_int("PORTAL_DELIVERY_MAX_ATTEMPTS", 8)
PORTAL_DELIVERY_BACKOFF_SECONDS = _positive_int("PORTAL_DELIVERY_BACKOFF_SECONDS", 30)
PORTAL_DELIVERY_BACKOFF_CAP_SECONDS = _positive_int("PORTAL_DELIVERY_BACKOFF_CAP_SECONDS", 3600)
PORTAL_DELIVERY_RETRY_AFTER_CAP_SECONDS = _positive_int("PORTAL_DELIVERY_RETRY_AFTER_CAP_SECONDS", 6 * 3600)
# Notifications (e-mail, chat): the same retry rule (portal/retry.py) with their own policy.
PORTAL_NOTIFICATION_MAX_ATTEMPTS = _positive_int("PORTAL_NOTIFICATION_MAX_ATTEMPTS", 8)
PORTAL_NOTIFICATION_BACKOFF_SECONDS = _positive_int("PORTAL_NOTIFICATION_BACKOFF_SECONDS", 30)
PORTAL_NOTIFICATION_BACKOFF_CAP_SECONDS = _positive_int("PORTAL_NOTIFICATION_BACKOFF_CAP_SECONDS", 3600)

# Outbound URL policy (portal/outbound.py): configured URLs (CI webhooks, chat channels) must be
# https and reach public addresses only, checked at save and at connect; these hosts and networks
# are exempt (plain http allowed too): names, ".domain" suffixes, IPs or CIDRs, comma-separated.
try:
    PORTAL_OUTBOUND_ALLOWED_HOSTS = _read("PORTAL_OUTBOUND_ALLOWED_HOSTS", list, [])
    parse_allow_list(PORTAL_OUTBOUND_ALLOWED_HOSTS)
except ValueError as exc:
    raise ImproperlyConfigured(f"PORTAL_OUTBOUND_ALLOWED_HOSTS has an invalid entry: {exc}") from exc

# --- Training and enforcement (see README "Training and enforcement") ------------------------
PORTAL_TRAINING_REMIND_DAYS_BEFORE = _positive_int("PORTAL_TRAINING_REMIND_DAYS_BEFORE", 14)
PORTAL_TRAINING_REMINDER_PERIOD_DAYS = _positive_int("PORTAL_TRAINING_REMINDER_PERIOD_DAYS", 7)
PORTAL_TRAINING_SUSPEND_AFTER_DAYS = _read("PORTAL_TRAINING_SUSPEND_AFTER_DAYS", int, 7)
PORTAL_POLICY_GRACE_DAYS = _read("PORTAL_POLICY_GRACE_DAYS", int, 30)
if PORTAL_TRAINING_SUSPEND_AFTER_DAYS < 0 or PORTAL_POLICY_GRACE_DAYS < 0:
    raise ImproperlyConfigured("PORTAL_TRAINING_SUSPEND_AFTER_DAYS and PORTAL_POLICY_GRACE_DAYS must not be negative")

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# The API (deployments.api): bearer tokens, JSON only with a body size limit, one error format.
REST_FRAMEWORK.update({
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "deployments.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "deployments.api.schema.PortalAutoSchema",
    "DEFAULT_PARSER_CLASSES": ["deployments.api.errors.SizeLimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "deployments.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
})
SPECTACULAR_SETTINGS = {
    "TITLE": "Deployment authorization portal API",
    "DESCRIPTION": "Ask for permission to deploy, learn the decision, report what was deployed. "
                   "Errors: {\"error\": {\"code\", \"message\", \"details\"}}.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RequestStatusEnum": "deployments.choices.RequestStatus",
        "RequestSourceEnum": "deployments.choices.RequestSource",
        "DeliveryStatusEnum": "deployments.choices.DeliveryStatus",
        "ApprovalDecisionEnum": "deployments.choices.Decision",
        "RequestDecisionEnum": "deployments.choices.RequestDecision",
    },
}

# --- Audit ----------------------------------------------------------------------------------
AUDITLOG_DISABLE_REMOTE_ADDR = False
AUDITLOG_STORE_JSON_CHANGES = True

# --- Logging: portal/conf/production.py (JSON lines in production, plain text in make run) -----
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING too

# --- GitHub App integration (docs/github.md) -------------------------------------------------
GITHUB_API_URL = _url("GITHUB_API_URL", "https://api.github.com")
GITHUB_APP_ID = _read("GITHUB_APP_ID", str, "").strip()
if GITHUB_APP_ID and not GITHUB_APP_ID.isdigit():
    raise ImproperlyConfigured(f"GITHUB_APP_ID must be the App's numeric id, got {GITHUB_APP_ID!r}")
GITHUB_APP_PRIVATE_KEY = (_secret("GITHUB_APP_PRIVATE_KEY", "") or "").replace("\\n", "\n")
if GITHUB_APP_PRIVATE_KEY and "PRIVATE KEY-----" not in GITHUB_APP_PRIVATE_KEY:
    raise ImproperlyConfigured("GITHUB_APP_PRIVATE_KEY (or _FILE) must be the App's PEM private key")
GITHUB_WEBHOOK_SECRET = _secret("GITHUB_WEBHOOK_SECRET", "") or ""
# GitHub caps webhook payloads at 25 MB; anything larger is refused with 413.
GITHUB_WEBHOOK_MAX_BYTES = _positive_int("GITHUB_WEBHOOK_MAX_BYTES", 25 * 1024 * 1024)
# Refused webhook calls go to a bounded log (not the audit trail): the newest N rows are kept, and
# one source address writes at most one row per interval (later ones are counted on that row).
GITHUB_WEBHOOK_REJECTIONS_KEEP = _positive_int("GITHUB_WEBHOOK_REJECTIONS_KEEP", 1000)
GITHUB_WEBHOOK_REJECTION_INTERVAL_SECONDS = _positive_int("GITHUB_WEBHOOK_REJECTION_INTERVAL_SECONDS", 60)
# Processing a stored delivery again when GitHub could not be reached (portal/retry.py).
GITHUB_WEBHOOK_PROCESSING_MAX_RETRIES = _positive_int("GITHUB_WEBHOOK_PROCESSING_MAX_RETRIES", 6)
GITHUB_WEBHOOK_PROCESSING_BACKOFF_SECONDS = _positive_int("GITHUB_WEBHOOK_PROCESSING_BACKOFF_SECONDS", 15)
GITHUB_WEBHOOK_PROCESSING_BACKOFF_CAP_SECONDS = _positive_int("GITHUB_WEBHOOK_PROCESSING_BACKOFF_CAP_SECONDS", 600)
# --- GitLab integration (docs/gitlab.md) -----------------------------------------------------
GITLAB_URL = _url("GITLAB_URL", "https://gitlab.com")
# The portal's bot user's access token (scope "api"); the bot is the approver named in each
# protected environment's approval rules.
GITLAB_TOKEN = _secret("GITLAB_TOKEN", "") or ""
GITLAB_WEBHOOK_SECRET = _secret("GITLAB_WEBHOOK_SECRET", "") or ""
GITLAB_WEBHOOK_MAX_BYTES = _positive_int("GITLAB_WEBHOOK_MAX_BYTES", 25 * 1024 * 1024)
GITLAB_WEBHOOK_REJECTIONS_KEEP = _positive_int("GITLAB_WEBHOOK_REJECTIONS_KEEP", 1000)
GITLAB_WEBHOOK_REJECTION_INTERVAL_SECONDS = _positive_int("GITLAB_WEBHOOK_REJECTION_INTERVAL_SECONDS", 60)
# GitLab sends no webhook when a deployment starts waiting for approval: the portal polls this often.
GITLAB_POLL_SECONDS = _positive_int("GITLAB_POLL_SECONDS", 30)
GITLAB_WEBHOOK_PROCESSING_MAX_RETRIES = _positive_int("GITLAB_WEBHOOK_PROCESSING_MAX_RETRIES", 6)
GITLAB_WEBHOOK_PROCESSING_BACKOFF_SECONDS = _positive_int("GITLAB_WEBHOOK_PROCESSING_BACKOFF_SECONDS", 15)
GITLAB_WEBHOOK_PROCESSING_BACKOFF_CAP_SECONDS = _positive_int("GITLAB_WEBHOOK_PROCESSING_BACKOFF_CAP_SECONDS", 600)
# --- Jenkins integration (docs/jenkins.md) -------------------------------------------------
# The Jenkins the portal answers pipeline `input` steps on (its root URL, with any context path), as
# the portal's own Jenkins user with that user's API token (HTTP basic user:token).
JENKINS_URL = os.environ.get("JENKINS_URL", "").strip().rstrip("/")
if JENKINS_URL:
    JENKINS_URL = _url("JENKINS_URL", "")
JENKINS_USER = _read("JENKINS_USER", str, "").strip()
if JENKINS_USER and (":" in JENKINS_USER or not JENKINS_USER.isprintable()):
    raise ImproperlyConfigured(f"JENKINS_USER must be the portal's Jenkins user id, got {JENKINS_USER!r}")
JENKINS_API_TOKEN = (_secret("JENKINS_API_TOKEN", "") or "").strip()
# --- Notifications (dashboard) --------------------------------------------------------------
# Remind eligible approvers of a request still awaiting approval after this many minutes (then every period).
PORTAL_REMINDER_AFTER_MINUTES = _positive_int("PORTAL_REMINDER_AFTER_MINUTES", 240)
# Key material for secrets stored in the database (chat webhook URLs); defaults to the secret key.
PORTAL_SECRETS_KEY = _secret("PORTAL_SECRETS_KEY", "") or ""

# --- Monitoring and audit trail -------------------------------------------------------------
# PDF exports of reports stop after this many rows (CSV, XLSX and JSON have every row).
PORTAL_REPORT_PDF_MAX_ROWS = _positive_int("PORTAL_REPORT_PDF_MAX_ROWS", 1000)
PORTAL_VIOLATION_ACK_HOURS = _positive_int("PORTAL_VIOLATION_ACK_HOURS", 24)
PORTAL_AUDIT_REVIEW_INTERVAL_DAYS = _positive_int("PORTAL_AUDIT_REVIEW_INTERVAL_DAYS", 30)
PORTAL_AUDIT_CHAIN_GRACE_MINUTES = _positive_int("PORTAL_AUDIT_CHAIN_GRACE_MINUTES", 10)
PORTAL_AUDIT_CHAIN_SEAL_DEBOUNCE_SECONDS = _positive_int("PORTAL_AUDIT_CHAIN_SEAL_DEBOUNCE_SECONDS", 5)
# Seal shortly after each commit that wrote audit evidence (the minute beat run seals regardless).
# Off under pytest, where eager tasks would seal inline after every commit; tests turn it on.
PORTAL_AUDIT_CHAIN_SEAL_ON_COMMIT = _bool("PORTAL_AUDIT_CHAIN_SEAL_ON_COMMIT", not TESTING)
# The audit trail's keys live outside the database (compliance/audit/keys.py, docs/audit-trail.md):
# an HMAC key for the chain (older keys stay listed as retired after a rotation) and an Ed25519 key
# that signs checkpoints and bundle manifests. Required in production; `make run` and the tests use
# fixed development keys.
PORTAL_AUDIT_CHAIN_KEY = _secret("PORTAL_AUDIT_CHAIN_KEY", "") or ""
PORTAL_AUDIT_CHAIN_RETIRED_KEYS = _secret("PORTAL_AUDIT_CHAIN_RETIRED_KEYS", "") or ""
PORTAL_AUDIT_SIGNING_KEY = _secret("PORTAL_AUDIT_SIGNING_KEY", "") or ""
# Public keys (PEM, concatenated) of earlier signing keys, so older checkpoints still verify.
PORTAL_AUDIT_SIGNING_RETIRED_PUBLIC_KEYS = _secret("PORTAL_AUDIT_SIGNING_RETIRED_PUBLIC_KEYS", "") or ""
for _name in ("PORTAL_AUDIT_CHAIN_KEY", "PORTAL_AUDIT_SIGNING_KEY"):
    if not vars()[_name] and not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            f"{_name} (or {_name}_FILE) must be set when DJANGO_DEBUG is off; `manage.py generate_audit_keys` makes one"
        )
# Development keys (fixed, public, never protecting real evidence) stand in for a missing key.
PORTAL_AUDIT_DEVELOPMENT_KEYS = not (PORTAL_AUDIT_CHAIN_KEY and PORTAL_AUDIT_SIGNING_KEY)
if not PORTAL_AUDIT_CHAIN_KEY:
    PORTAL_AUDIT_CHAIN_KEY = "insecure-development-audit-chain-key-for-make-run-and-tests-only"
if len(PORTAL_AUDIT_CHAIN_KEY) < 32 or PORTAL_AUDIT_CHAIN_KEY == SECRET_KEY:
    raise ImproperlyConfigured(
        "PORTAL_AUDIT_CHAIN_KEY must be at least 32 characters long and differ from DJANGO_SECRET_KEY"
    )
if PORTAL_AUDIT_SIGNING_KEY:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        _signing_key = load_pem_private_key(PORTAL_AUDIT_SIGNING_KEY.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured("PORTAL_AUDIT_SIGNING_KEY must be an unencrypted PEM private key") from exc
    if not isinstance(_signing_key, Ed25519PrivateKey):
        raise ImproperlyConfigured("PORTAL_AUDIT_SIGNING_KEY must be an Ed25519 key (not RSA or EC)")
    del _signing_key
# Signed checkpoints of the chain's head are appended here, outside the database.
PORTAL_AUDIT_CHECKPOINT_DIR = Path(os.environ.get("PORTAL_AUDIT_CHECKPOINT_DIR", VAR_DIR / "audit-checkpoints"))
# A new checkpoint at most this often (bundles, the daily e-mail and verification always make one).
PORTAL_AUDIT_CHECKPOINT_INTERVAL_SECONDS = _positive_int("PORTAL_AUDIT_CHECKPOINT_INTERVAL_SECONDS", 60)
# A chained row without a valid write-time tag is a forged insert once it is older than this.
PORTAL_AUDIT_TAG_GRACE_SECONDS = _positive_int("PORTAL_AUDIT_TAG_GRACE_SECONDS", 60)
PORTAL_RECONCILIATION_DAYS = _positive_int("PORTAL_RECONCILIATION_DAYS", 7)
PORTAL_REQUEST_OVERDUE_HOURS = _positive_int("PORTAL_REQUEST_OVERDUE_HOURS", 8)
# A periodic job is late when its last success is older than this many times its interval.
PORTAL_JOB_LATE_FACTOR = _positive_int("PORTAL_JOB_LATE_FACTOR", 2)
if TESTING and DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # The audit tables refuse UPDATE/DELETE/TRUNCATE unless this is on; only the test suite (which
    # flushes tables and drops test databases) turns it on. Trigger tests turn it off locally.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c portal.audit_maintenance=on"
