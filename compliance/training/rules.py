"""Pure rules of training compliance: given a course, when the person gained the role, their
latest attestation and the policy in force, where do they stand? No I/O here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import markdown
import nh3

from ..choices import TrainingStatus

ACTING_STATUSES = frozenset({TrainingStatus.CURRENT, TrainingStatus.EXPIRING})


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def same_origin_url(url: str, base_url: str = "") -> bool:
    """True for a relative URL (``/static/x.png``, ``diagram.png``) or one under ``base_url``."""
    url = (url or "").strip()
    if not url or "\\" in url or url.startswith("//") or any(ord(c) < 32 for c in url):
        return False
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc:
        return True
    base = urlsplit(base_url) if base_url else None
    return bool(base and base.netloc) and (parts.scheme, parts.netloc.lower()) == (base.scheme, base.netloc.lower())


def render_markdown(text: str, *, base_url: str = "") -> str:
    """Markdown to HTML with every tag, attribute and URL scheme outside nh3's safe lists removed, and
    images only from the portal itself: an external ``<img>`` would tell a third party who read the
    policy and when (and the Content-Security-Policy would block it anyway), so its ``src`` is dropped.
    """
    html = markdown.markdown(text, extensions=["extra", "sane_lists"], output_format="html")

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute in ("src", "srcset") and not same_origin_url(value, base_url):
            return None
        return value

    return nh3.clean(html, link_rel="noopener noreferrer nofollow", attribute_filter=keep)


def parse_version(version: str) -> tuple[int, int]:
    major, _, minor = version.strip().partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise ValueError('A version looks like "major.minor", e.g. 2.1.')
    return int(major), int(minor)


@dataclass(frozen=True)
class PolicyFacts:
    """The policy in force, and when each major version in effect took effect."""

    version: str
    major: int
    major_starts: tuple[tuple[int, datetime], ...]  # (major, effective_at of its first version)
    grace: timedelta

    def stale_from(self, attested_major: int) -> datetime | None:
        """When an attestation of ``attested_major`` stops counting: the grace period after the
        first newer major version took effect (None while no newer major is in effect)."""
        newer = [start for major, start in self.major_starts if major > attested_major]
        return min(newer) + self.grace if newer else None


@dataclass(frozen=True)
class AttestationFacts:
    attested_at: datetime
    expires_at: datetime
    policy_major: int
    policy_version: str


@dataclass(frozen=True)
class CourseStanding:
    """Where one person stands on one required course."""

    status: TrainingStatus
    deadline: datetime  # expiry of the current attestation, or when it is (was) due
    reason: str  # in words: "never completed", "expired on ...", "attested policy 1.0; 2.0 applies"
    valid_until: datetime | None  # when the latest attestation stops counting (None: never attested)

    @property
    def allows_acting(self) -> bool:
        return self.status in ACTING_STATUSES


def valid_until(attestation: AttestationFacts, policy: PolicyFacts | None, covers_policy: bool = True) -> datetime:
    """When ``attestation`` stops counting: its expiry, or earlier when a newer major policy's grace ends
    (only for courses that cover the policy text)."""
    stale_from = policy.stale_from(attestation.policy_major) if policy is not None and covers_policy else None
    return min(attestation.expires_at, stale_from) if stale_from is not None else attestation.expires_at


def standing(
    *,
    now: datetime,
    assigned_at: datetime,
    due_days: int,
    latest: AttestationFacts | None,
    policy: PolicyFacts | None,
    warn_before: timedelta,
    covers_policy: bool = True,
) -> CourseStanding:
    """Steps:
    1. An attestation counts until it expires or, for an older major policy version, until the
       grace period of the newer version ends.
    2. While it counts the person is CURRENT (EXPIRING within ``warn_before`` of the end).
    3. Otherwise the course is due at the later of "when it stopped counting" and "role gained +
       due_days": DUE before that deadline, OVERDUE from it on.
    """
    first_due = assigned_at + timedelta(days=due_days)
    if latest is None:
        status = TrainingStatus.DUE if now < first_due else TrainingStatus.OVERDUE
        return CourseStanding(status, first_due, "never completed", None)
    until = valid_until(latest, policy, covers_policy)
    if now < until:
        status = TrainingStatus.EXPIRING if until - now <= warn_before else TrainingStatus.CURRENT
        if until < latest.expires_at:
            reason = f"attested policy v{latest.policy_version}; v{policy.version} must be attested by {until:%Y-%m-%d}"
        else:
            reason = f"valid until {until:%Y-%m-%d}"
        return CourseStanding(status, until, reason, until)
    deadline = max(until, first_due)
    status = TrainingStatus.DUE if now < deadline else TrainingStatus.OVERDUE
    if until < latest.expires_at:
        reason = f"stale: attested policy v{latest.policy_version}, v{policy.version} applies"
    else:
        reason = f"expired on {until:%Y-%m-%d %H:%M} UTC"
    return CourseStanding(status, deadline, reason, until)
