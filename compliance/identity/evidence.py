"""How and when the person behind a request last authenticated, from allauth's record of the session.

allauth keeps, per session, a list of every authentication (``{"method": "password"|"mfa"|
"socialaccount", "at": epoch seconds, ...}``, re-authentications marked ``reauthenticated``). The step-up
rule (``deployments.gate.policy.step_up_refusal``) and each approval's evidence read it through here.
An API token is not a session: it carries no authentication record and never satisfies step-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

API_TOKEN = "api_token"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class AuthenticationEvidence:
    """``method``: how the person last authenticated ("password", "mfa:totp", "mfa:webauthn",
    "mfa:recovery_codes", "sso:<provider>", "api_token", "unknown"); ``at``: when; ``mfa_at``: their
    latest second-factor (re-)authentication in this session, if any."""

    method: str = UNKNOWN
    at: datetime | None = None
    mfa_at: datetime | None = None

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "at": self.at.isoformat() if self.at else None,
            "mfa_at": self.mfa_at.isoformat() if self.mfa_at else None,
        }


def _when(record: dict) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(record["at"]), tz=UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def _method(record: dict) -> str:
    method = str(record.get("method") or UNKNOWN)
    if method == "mfa":
        return f"mfa:{record.get('type') or 'unknown'}"
    if method == "socialaccount":
        return f"sso:{record.get('provider') or 'unknown'}"
    return method


def from_records(records: list[dict]) -> AuthenticationEvidence:
    """The evidence of a session's authentication records (newest last, as allauth appends them)."""
    dated = [(when, record) for record in records if isinstance(record, dict) and (when := _when(record))]
    if not dated:
        return AuthenticationEvidence()
    at, last = max(dated, key=lambda pair: pair[0])
    mfa_times = [when for when, record in dated if record.get("method") == "mfa"]
    return AuthenticationEvidence(method=_method(last), at=at, mfa_at=max(mfa_times) if mfa_times else None)


def from_request(request) -> AuthenticationEvidence:
    """The evidence for the person signed in on ``request`` (a DRF or Django request)."""
    if getattr(request, "auth", None) is not None:  # DRF with a bearer token: not a browser session
        return AuthenticationEvidence(method=API_TOKEN)
    django_request = getattr(request, "_request", request)
    user = getattr(django_request, "user", None)
    if user is None or not user.is_authenticated or not hasattr(django_request, "session"):
        return AuthenticationEvidence()
    from allauth.account.internal.flows.login import get_authentication_records

    return from_records(get_authentication_records(django_request, user))
