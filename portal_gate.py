#!/usr/bin/env python3
"""portal-gate: make a CI pipeline wait for the deployment portal's decision.

    portal-gate request --url https://portal.example.com --token "$PORTAL_TOKEN" \
        --service payments-api --environment production --sha "$GIT_SHA" --ref main --wait --timeout 3600 \
        --ticket PAY-123 --risk-level low --impact "..." --rollback-plan "..."

Creates a deployment request through the portal's API, prints a link to the request page, and with
``--wait`` polls (with backoff) until the request is decided. Exit status:

    0  approved (deployment may proceed)
    1  rejected, blocked by checks, expired, cancelled or superseded (the line printed says which,
       with the newer request's link when one superseded it); do not deploy
    2  timed out, or an error (bad arguments, refused request, unreachable portal)

Only the Python standard library is used, so the file can be copied into any pipeline image and
run as ``python portal_gate.py``. ``--url`` and ``--token`` default to $PORTAL_URL and $PORTAL_TOKEN.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

EXIT_APPROVED, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2
APPROVED = {"approved", "deploying", "deployed", "failed"}
REFUSED = {"rejected", "blocked", "expired", "cancelled", "superseded"}
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
USER_AGENT = "portal-gate/1"


class GateError(Exception):
    """A failure that ends the run with exit status 2; ``transient`` ones are retried until the deadline."""

    def __init__(self, message: str, *, transient: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


def call(method: str, url: str, token: str, *, body: dict | None = None, headers: dict | None = None,
         timeout: float = 30.0) -> dict:
    """One API call; returns the JSON body or raises ``GateError`` (with the API's error code and message)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http(s) checked in main)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Accept", "application/json")
    request.add_header("User-Agent", USER_AGENT)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (URL given by the user)
            return json.loads(response.read().decode() or "{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read().decode(errors="replace")
        try:
            error = json.loads(raw).get("error", {})
            message = f"{error.get('code', 'error')}: {error.get('message', '')}".strip()
        except (ValueError, AttributeError):
            message = raw[:200].strip() or exc.reason
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        raise GateError(
            f"HTTP {exc.code} {message}",
            transient=exc.code in TRANSIENT_HTTP,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GateError(f"cannot reach the portal: {reason}", transient=True) from None
    except ValueError:
        raise GateError("the portal answered with something that is not JSON", transient=True) from None


def with_retries(func, *, deadline: float, interval: float, max_interval: float, sleep=time.sleep):
    """Call ``func`` until it succeeds; transient errors are retried with backoff until ``deadline``."""
    while True:
        try:
            return func()
        except GateError as exc:
            wait = max(interval, exc.retry_after or 0)
            if not exc.transient or time.monotonic() + wait > deadline:
                raise
            sleep(wait)
            interval = min(max_interval, interval * 2)


def outcome(request: dict) -> int | None:
    status = request.get("status", "")
    if status in APPROVED:
        return EXIT_APPROVED
    if status in REFUSED:
        return EXIT_REFUSED
    return None


ENDINGS = {
    "rejected": "rejected by an approver",
    "blocked": "blocked by failed checks",
    "expired": "expired",
    "cancelled": "cancelled",
    "superseded": "superseded by a newer request",
}


def summary(request: dict, base: str = "") -> str:
    """One line: the request, how it stands or ended and why, and the newer request if one superseded it."""
    reason = " ".join((request.get("status_reason") or "").split())
    status = request.get("status")
    text = f"request #{request.get('id')} {ENDINGS.get(status, status)}" + (f": {reason}" if reason else "")
    newer = request.get("superseded_by")
    if newer:
        link = f"{base}/requests/{newer}/" if base else request.get("superseded_by_url") or f"#{newer}"
        text += f" (newer request: {link})"
    return text


def parse_pairs(values: list[str], option: str, example: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, state = value.partition("=")
        if not sep or not name:
            raise GateError(f"{option} {value!r}: use name=value, e.g. {example}")
        pairs[name] = state
    return pairs


def parse_checks(values: list[str]) -> dict[str, str]:
    checks = {}
    for value in values:
        name, sep, state = value.partition("=")
        if not sep or not name:
            raise GateError(f"--check {value!r}: use name=state, e.g. unit=success")
        checks[name] = state
    return checks


def request_command(args: argparse.Namespace) -> int:
    base = (args.url or "").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise GateError("--url (or $PORTAL_URL) must be the portal's http(s) address")
    if not args.token:
        raise GateError("--token (or $PORTAL_TOKEN) is required")
    start = time.monotonic()
    deadline = start + args.timeout
    body = {"service": args.service, "environment": args.environment, "sha": args.sha, "ref": args.ref,
            "source": "cli", "checks": parse_checks(args.check)}
    external_ids = parse_pairs(args.external_id, "--external-id", "pipeline_id=1234")
    if external_ids:
        body["external_ids"] = external_ids
    for name, value in (("title", args.title), ("source_url", args.source_url),
                        ("requester_login", args.requester), ("ticket", args.ticket),
                        ("risk_level", args.risk_level), ("impact", args.impact),
                        ("rollback_plan", args.rollback_plan)):
        if value:
            body[name] = value
    # The same key on every retry of this run: a retried POST never creates a second request.
    key = args.idempotency_key or f"portal-gate-{uuid.uuid4()}"
    created = with_retries(
        lambda: call("POST", f"{base}/api/v1/requests/", args.token, body=body,
                     headers={"Idempotency-Key": key}, timeout=args.http_timeout),
        deadline=deadline, interval=args.poll_interval, max_interval=args.max_interval,
    )
    request_id = created["id"]
    print(f"Deployment request #{request_id}: {base}/requests/{request_id}/", flush=True)
    result = outcome(created)
    if result is not None or not args.wait:
        print(f"portal-gate: {summary(created, base)}", flush=True)
        return EXIT_APPROVED if result is None else result  # without --wait: created is success
    interval = args.poll_interval
    current = created
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            print(f"portal-gate: timed out after {args.timeout:g}s waiting for a decision; "
                  f"{summary(current, base)}", flush=True)
            return EXIT_ERROR
        time.sleep(min(interval, remaining))
        interval = min(args.max_interval, interval * 1.5)
        try:
            current = call("GET", f"{base}/api/v1/requests/{request_id}/status/", args.token,
                           timeout=args.http_timeout)
        except GateError as exc:
            if not exc.transient:
                raise
            print(f"portal-gate: {exc} (retrying)", file=sys.stderr, flush=True)
            continue
        result = outcome(current)
        if result is not None:
            print(f"portal-gate: {summary(current, base)}", flush=True)
            return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portal-gate", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    req = commands.add_parser("request", help="ask for permission to deploy and (with --wait) wait for it")
    req.add_argument("--url", default=os.environ.get("PORTAL_URL", ""), help="portal address ($PORTAL_URL)")
    req.add_argument("--token", default=os.environ.get("PORTAL_TOKEN", ""), help="API token ($PORTAL_TOKEN)")
    req.add_argument("--service", required=True)
    req.add_argument("--environment", required=True)
    req.add_argument("--sha", required=True, help="the 40-character commit sha to deploy")
    req.add_argument("--ref", required=True, help="branch or tag, e.g. main")
    req.add_argument("--title", default="")
    req.add_argument("--source-url", default="", help="link to the pipeline run")
    req.add_argument("--requester", default="", help="the person the pipeline acts for (username or CI login)")
    req.add_argument("--ticket", default="", help="the change's ticket reference, e.g. PAY-123")
    req.add_argument("--risk-level", default="", choices=["", "low", "medium", "high"],
                     help="the change's risk level")
    req.add_argument("--impact", default="", help="impact statement: what the change affects")
    req.add_argument("--rollback-plan", default="", help="how the change is undone if it fails")
    req.add_argument("--check", action="append", default=[], metavar="NAME=STATE",
                     help="a check result, e.g. unit=success (repeatable)")
    req.add_argument("--external-id", action="append", default=[], metavar="NAME=VALUE",
                     help="an id of the CI run kept on the request, e.g. jenkins_build_url=$BUILD_URL or "
                          "gitlab_pipeline_id=1234 (repeatable)")
    req.add_argument("--idempotency-key", default="", help="reuse to make re-runs return the same request")
    req.add_argument("--wait", action="store_true", help="wait for the decision")
    req.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait in total (default 3600)")
    req.add_argument("--poll-interval", type=float, default=5.0, help="first polling interval in seconds")
    req.add_argument("--max-interval", type=float, default=60.0, help="longest polling interval in seconds")
    req.add_argument("--http-timeout", type=float, default=30.0, help="seconds per HTTP call")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return request_command(args)
    except GateError as exc:
        print(f"portal-gate: error: {exc}", flush=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("portal-gate: interrupted", flush=True)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
