"""Who is calling: the one place that reads the caller's address from a request (the evidence kept
with decisions, tokens, samples and refusals). Behind a TLS proxy Django's ``REMOTE_ADDR`` is what the
proxy hands on; the portal never trusts a forwarded header for evidence."""

from __future__ import annotations


def client_ip(request) -> str | None:
    """The caller's address, or None when the server was not told one."""
    return request.META.get("REMOTE_ADDR") or None
