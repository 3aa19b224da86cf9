"""Settings of auditor evidence: the after-the-fact review of emergency changes and evidence samples."""

from __future__ import annotations

from portal.envvars import _positive_int

__all__ = ["PORTAL_EMERGENCY_REVIEW_HOURS", "PORTAL_EVIDENCE_SAMPLE_MAX"]

# An emergency change must be reviewed by an approver who did not approve it within this many hours
# of its approval; a missed review opens a violation.
PORTAL_EMERGENCY_REVIEW_HOURS = _positive_int("PORTAL_EMERGENCY_REVIEW_HOURS", 48)
# The largest sample of changes an auditor may draw at once (each becomes a JSON and a PDF in the bundle).
PORTAL_EVIDENCE_SAMPLE_MAX = _positive_int("PORTAL_EVIDENCE_SAMPLE_MAX", 200)
