"""A fake GitHub: a real local HTTP server (pytest-httpserver) speaking the REST API the portal uses.

It implements GitHub's documented paths, methods, status codes, headers and JSON fields for:

- ``POST /app/installations/{id}/access_tokens`` (App JWT, RS256, verified with the test public key)
- ``GET /app/installations``, ``GET /app/installations/{id}``, ``GET /repos/{owner}/{repo}/installation`` (JWT)
- ``GET /repos/{owner}/{repo}/commits/{ref}/check-runs``, ``GET .../commits/{sha}/pulls``
- ``GET /repos/{owner}/{repo}/compare/{base}...{head}``
- ``GET /repos/{owner}/{repo}/branches``, ``GET|PUT .../branches/{branch}/protection``
- ``POST /repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule``
- ``GET /repos/{owner}/{repo}/deployments`` (filters ``sha``, ``ref``, ``task``, ``environment``; newest
  first; ``per_page``/``page`` with a ``Link`` header), ``GET .../deployments/{id}`` and
  ``GET .../deployments/{id}/statuses`` (newest first, paginated the same way)

Every call is recorded; installation calls must carry a token the fake issued for that
installation, App calls a valid JWT. ``faults`` queues answers to give before the normal one.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlencode

import jwt
from werkzeug import Request, Response

FIXTURES = Path(__file__).parent / "fixtures"
APP_ID = "12345"
INSTALLATION_ID = 42


def fixture(name: str, *, api_url: str | None = None) -> dict:
    """A documented payload; ``https://api.github.com`` is rewritten to the fake's address."""
    text = (FIXTURES / f"{name}.json").read_text()
    if api_url:
        text = text.replace("https://api.github.com", api_url.rstrip("/"))
    return json.loads(text)


@dataclass
class Call:
    method: str
    path: str
    query: str
    json: object
    headers: dict
    status: int = 0


@dataclass
class Run:
    """A workflow run whose jobs wait on custom protection rules for some environments."""

    waiting: set[str] = field(default_factory=set)
    decisions: list[dict] = field(default_factory=list)
    status_reports: list[dict] = field(default_factory=list)


def _json(data, status=200, headers=None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers or {}, content_type="application/json")


def _error(status: int, message: str, headers=None) -> Response:
    return _json({"message": message, "documentation_url": "https://docs.github.com/rest"}, status, headers)


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user(login: str) -> dict:
    bot = login.endswith("[bot]")
    return {"login": login, "id": 583231 if not bot else 41898282, "type": "Bot" if bot else "User"}


def _page_params(request: Request) -> tuple[int, int]:
    """GitHub's ``per_page`` (default 30, at most 100) and ``page`` (default 1)."""
    try:
        per_page = min(100, max(1, int(request.args.get("per_page", 30))))
    except ValueError:
        per_page = 30
    try:
        page = max(1, int(request.args.get("page", 1)))
    except ValueError:
        page = 1
    return per_page, page


class FakeGitHub:
    def __init__(self, httpserver, public_key, *, app_id: str = APP_ID):
        self.public_key = public_key
        self.app_id = app_id
        self.url = httpserver.url_for("/").rstrip("/")
        self.calls: list[Call] = []
        self.tokens: dict[str, tuple[int, float]] = {}
        self.installations: dict[str, int] = {}  # repository → installation id
        self.check_runs: dict[tuple[str, str], list[dict]] = {}
        self.compares: dict[tuple[str, str, str], dict] = {}
        self.pulls: dict[tuple[str, str], list[dict]] = {}
        self.branch_names: dict[str, list[str]] = {}
        self.protection: dict[tuple[str, str], dict] = {}
        self.runs: dict[tuple[str, int], Run] = {}
        self.faults: dict[str, list[tuple[int, dict]]] = {}
        # repository → environment name → {"can_admins_bypass": bool, "app_ids": [ids of protection-rule apps]}
        self.environments: dict[str, dict[str, dict]] = {}
        # repository → deployments (GitHub's deployment objects); (repository, id) → statuses, oldest first
        self.deployments: dict[str, list[dict]] = {}
        self.deployment_statuses: dict[tuple[str, int], list[dict]] = {}
        self._ids = itertools.count(1)
        self.token_lifetime = timedelta(hours=1)
        httpserver.expect_request(re.compile(r"^/.*")).respond_with_handler(self)

    # --- set-up helpers -------------------------------------------------------------------
    def install(self, repository: str, installation_id: int = INSTALLATION_ID) -> None:
        self.installations[repository] = installation_id

    def wait_for(self, repository: str, run_id: int, environment: str) -> Run:
        run = self.runs.setdefault((repository, run_id), Run())
        run.waiting.add(environment)
        return run

    def fail(self, key: str, *answers: tuple[int, dict]) -> None:
        """Queue answers for ``key`` ("token", "callback", "status-report", "check-runs",
        "compare", "protection", "deployments", "deployment-statuses"; the last two also per
        repository: "deployments:owner/repo", "deployment-statuses:owner/repo")."""
        self.faults.setdefault(key, []).extend(answers)

    def deploy(
        self,
        repository: str,
        environment: str,
        sha: str,
        *states: str,
        at: datetime,
        deployment_id: int | None = None,
        ref: str = "main",
        creator: str = "octocat",
        task: str = "deploy",
    ) -> dict:
        """A deployment created at ``at`` (as GitHub Actions or the API creates one), then one status
        per state in ``states``, a minute apart, each set by GitHub Actions."""
        deployment_id = deployment_id or 9_000_000 + next(self._ids)
        base = f"{self.url}/repos/{repository}/deployments/{deployment_id}"
        deployment = {
            "url": base,
            "id": deployment_id,
            "node_id": f"DE_kwDOJq1ebM{deployment_id}",
            "sha": sha,
            "ref": ref,
            "task": task,
            "payload": {},
            "original_environment": environment,
            "environment": environment,
            "description": None,
            "creator": _user(creator),
            "created_at": _timestamp(at),
            "updated_at": _timestamp(at),
            "statuses_url": f"{base}/statuses",
            "repository_url": f"{self.url}/repos/{repository}",
            "transient_environment": False,
            "production_environment": environment == "production",
            "performed_via_github_app": None,
        }
        self.deployments.setdefault(repository, []).append(deployment)
        self.deployment_statuses[(repository, deployment_id)] = []
        for i, state in enumerate(states, start=1):
            self.add_status(repository, deployment_id, state, at=at + timedelta(minutes=i))
        return deployment

    def add_status(self, repository: str, deployment_id: int, state: str, *, at: datetime | None = None) -> dict:
        """A deployment status as GitHub Actions sets it (``log_url`` is the job's page)."""
        deployment = next(d for d in self.deployments[repository] if d["id"] == deployment_id)
        statuses = self.deployment_statuses[(repository, deployment_id)]
        at = at or datetime.now(UTC)
        status_id = 7_000_000 + next(self._ids)
        job = f"https://github.com/{repository}/actions/runs/{deployment_id}/job/{status_id}"
        status = {
            "url": f"{deployment['url']}/statuses/{status_id}",
            "id": status_id,
            "node_id": f"DES_kwDOJq1ebM{status_id}",
            "state": state,
            "creator": _user("github-actions[bot]"),
            "description": "",
            "environment": deployment["environment"],
            "target_url": job,
            "created_at": _timestamp(at),
            "updated_at": _timestamp(at),
            "deployment_url": deployment["url"],
            "repository_url": deployment["repository_url"],
            "environment_url": "",
            "log_url": job,
            "performed_via_github_app": None,
        }
        statuses.append(status)
        deployment["updated_at"] = status["updated_at"]
        return status

    def calls_to(self, pattern: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if re.search(pattern, c.path) and (method is None or c.method == method)]

    # --- authentication -------------------------------------------------------------------
    def _verify_jwt(self, request: Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return "A JSON web token could not be decoded"
        try:
            claims = jwt.decode(
                auth[7:],
                self.public_key,
                algorithms=["RS256"],
                issuer=self.app_id,
                options={"require": ["iat", "exp", "iss"]},
                leeway=0,
            )
        except jwt.PyJWTError as exc:
            return f"A JSON web token could not be decoded ({type(exc).__name__})"
        now = time.time()
        if claims["exp"] - now > 600 or claims["iat"] > now + 1 or claims["exp"] <= claims["iat"]:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def _verify_token(self, request: Request, repository: str) -> str | None:
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else auth[6:] if auth.startswith("token ") else ""
        issued = self.tokens.get(token)
        if issued is None or issued[1] < time.time():
            return "Bad credentials"
        if repository and self.installations.get(repository) != issued[0]:
            return "Resource not accessible by integration"
        return None

    # --- dispatch -------------------------------------------------------------------------
    def __call__(self, request: Request) -> Response:
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
        path, _, query = raw.partition("?")
        body = None
        if request.data:
            try:
                body = json.loads(request.data)
            except ValueError:
                body = "<invalid json>"
        call = Call(request.method, path, query, body, dict(request.headers))
        self.calls.append(call)
        response = self._route(request, path, body)
        call.status = response.status_code
        return response

    def _fault(self, key: str) -> Response | None:
        queue = self.faults.get(key)
        if not queue:
            return None
        status, headers = queue.pop(0)
        if status in (403, 429):
            return _error(status, "You have exceeded a secondary rate limit.", headers)
        return _error(status, "Server Error" if status >= 500 else "Error", headers)

    def _route(self, request: Request, path: str, body) -> Response:
        if request.headers.get("Accept") != "application/vnd.github+json":
            return _error(415, "Unsupported 'Accept' header")
        if request.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            return _error(400, "Unsupported API version")
        m = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if m and request.method == "POST":
            return self._access_token(request, int(m.group(1)))
        if path == "/app/installations" and request.method == "GET":
            return self._as_app(request) or _json(
                [
                    {
                        "id": iid,
                        "account": {"login": repo.split("/")[0]},
                        "app_id": int(self.app_id),
                        "permissions": {
                            "actions": "read",
                            "deployments": "write",
                            "checks": "read",
                            "contents": "read",
                            "administration": "read",
                            "metadata": "read",
                        },
                        "events": ["deployment_protection_rule", "deployment_status", "push", "branch_protection_rule"],
                    }
                    for repo, iid in sorted(self.installations.items())
                ]
            )
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/installation", path)
        if m and request.method == "GET":
            denied = self._as_app(request)
            if denied:
                return denied
            if m.group(1) not in self.installations:
                return _error(404, "Not Found")
            return _json({"id": self.installations[m.group(1)], "app_id": int(self.app_id)})

        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/(.*)", path)
        if not m:
            return _error(404, "Not Found")
        repository, rest = m.group(1), m.group(2)
        denied = self._verify_token(request, repository)
        if denied:
            return _error(401 if denied == "Bad credentials" else 403, denied)
        return self._repo_route(request, repository, rest, body)

    def _as_app(self, request: Request) -> Response | None:
        error = self._verify_jwt(request)
        return _error(401, error) if error else None

    def _access_token(self, request: Request, installation_id: int) -> Response:
        fault = self._fault("token")
        if fault:
            return fault
        denied = self._as_app(request)
        if denied:
            return denied
        if installation_id not in self.installations.values():
            return _error(404, "Not Found")
        token = "ghs_" + secrets.token_hex(18)
        expires = datetime.now(UTC) + self.token_lifetime
        self.tokens[token] = (installation_id, expires.timestamp())
        return _json(
            {
                "token": token,
                "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "permissions": {"deployments": "write", "checks": "read"},
                "repository_selection": "selected",
            },
            201,
        )

    def _repo_route(self, request: Request, repository: str, rest: str, body) -> Response:
        method = request.method
        m = re.fullmatch(r"commits/([^/]+)/check-runs", rest)
        if m and method == "GET":
            fault = self._fault("check-runs")
            if fault:
                return fault
            runs = self.check_runs.get((repository, unquote(m.group(1))), [])
            return _json({"total_count": len(runs), "check_runs": runs})
        m = re.fullmatch(r"commits/([0-9a-f]{40})/pulls", rest)
        if m and method == "GET":
            return _json(self.pulls.get((repository, m.group(1)), []))
        m = re.fullmatch(r"compare/(.+)\.\.\.(.+)", rest)
        if m and method == "GET":
            fault = self._fault("compare")
            if fault:
                return fault
            key = (repository, unquote(m.group(1)), unquote(m.group(2)))
            if key not in self.compares:
                return _error(404, "Not Found")
            return _json(self.compares[key])
        m = re.fullmatch(r"environments/([^/]+)(/deployment_protection_rules)?", rest)
        if m and method == "GET":
            env = self.environments.get(repository, {}).get(unquote(m.group(1)))
            if env is None:
                return _error(404, "Not Found")
            if m.group(2):
                rules = [
                    {
                        "id": 3515 + i,
                        "node_id": "GA_kwDOAAABoM4AAAAAAAAAGg",
                        "enabled": True,
                        "app": {
                            "id": int(app_id),
                            "slug": "deployment-portal",
                            "node_id": "GHA_kwDOAAABoM4A",
                            "integration_url": f"{self.url}/apps/deployment-portal",
                        },
                    }
                    for i, app_id in enumerate(env.get("app_ids", []))
                ]
                return _json({"total_count": len(rules), "custom_deployment_protection_rules": rules})
            return _json(
                {
                    "id": 161088068,
                    "name": unquote(m.group(1)),
                    "can_admins_bypass": env["can_admins_bypass"],
                    "protection_rules": [{"id": 3736, "type": "custom"}] if env.get("app_ids") else [],
                }
            )
        if rest == "branches" and method == "GET":
            return _json(
                [
                    {"name": n, "protected": (repository, n) in self.protection, "commit": {"sha": "0" * 40}}
                    for n in self.branch_names.get(repository, [])
                ]
            )
        m = re.fullmatch(r"branches/([^/]+)/protection", rest)
        if m:
            branch = unquote(m.group(1))
            fault = self._fault("protection")
            if fault:
                return fault
            if method == "GET":
                if (repository, branch) not in self.protection:
                    return _error(404, "Branch not protected")
                return _json(self.protection[(repository, branch)])
            if method == "PUT":
                return self._put_protection(repository, branch, body)
        if rest == "deployments" and method == "GET":
            return (
                self._fault(f"deployments:{repository}")
                or self._fault("deployments")
                or self._list_deployments(request, repository)
            )
        m = re.fullmatch(r"deployments/(\d+)(/statuses)?", rest)
        if m and method == "GET":
            fault = m.group(2) and (
                self._fault(f"deployment-statuses:{repository}") or self._fault("deployment-statuses")
            )
            if fault:
                return fault
            deployment_id = int(m.group(1))
            if (repository, deployment_id) not in self.deployment_statuses:
                return _error(404, "Not Found")
            if not m.group(2):
                return _json(next(d for d in self.deployments[repository] if d["id"] == deployment_id))
            newest_first = list(reversed(self.deployment_statuses[(repository, deployment_id)]))
            return self._paginated(request, f"/repos/{repository}/{rest}", newest_first, {})
        m = re.fullmatch(r"actions/runs/(\d+)/deployment_protection_rule", rest)
        if m and method == "POST":
            fault = self._fault("callback" if isinstance(body, dict) and "state" in body else "status-report")
            if fault:
                return fault
            return self._review(repository, int(m.group(1)), body)
        return _error(404, "Not Found")

    def _list_deployments(self, request: Request, repository: str) -> Response:
        """Filtered by ``sha``, ``ref``, ``task`` and ``environment`` (exact), newest first."""
        filters = {k: request.args[k] for k in ("sha", "ref", "task", "environment") if k in request.args}
        found = [d for d in self.deployments.get(repository, []) if all(d[k] == v for k, v in filters.items())]
        found.sort(key=lambda d: (d["created_at"], d["id"]), reverse=True)
        return self._paginated(request, f"/repos/{repository}/deployments", found, filters)

    def _paginated(self, request: Request, path: str, items: list, filters: dict) -> Response:
        """One page of ``items`` with GitHub's ``Link`` header (next/last, and prev/first after page 1)."""
        per_page, page = _page_params(request)
        last = max(1, -(-len(items) // per_page))

        def link(number: int, rel: str) -> str:
            return f'<{self.url}{path}?{urlencode({**filters, "per_page": per_page, "page": number})}>; rel="{rel}"'

        links = []
        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        return _json(
            items[(page - 1) * per_page : page * per_page], headers={"Link": ", ".join(links)} if links else {}
        )

    def _put_protection(self, repository: str, branch: str, body) -> Response:
        required = ("required_status_checks", "enforce_admins", "required_pull_request_reviews", "restrictions")
        if not isinstance(body, dict) or any(key not in body for key in required):
            return _error(422, "Invalid request. Required fields missing.")
        base = f"{self.url}/repos/{repository}/branches/{branch}/protection"
        reviews = body["required_pull_request_reviews"]
        checks = body["required_status_checks"]
        restrictions = body["restrictions"]
        stored = {
            "url": base,
            "required_status_checks": (
                {
                    "url": f"{base}/required_status_checks",
                    "strict": checks["strict"],
                    "contexts": checks["contexts"],
                    "checks": [{"context": c, "app_id": None} for c in checks["contexts"]],
                }
                if checks
                else None
            ),
            "enforce_admins": {"url": f"{base}/enforce_admins", "enabled": bool(body["enforce_admins"])},
            "required_pull_request_reviews": (
                {"url": f"{base}/required_pull_request_reviews", **reviews} if reviews else None
            ),
            "restrictions": (
                {
                    "url": f"{base}/restrictions",
                    "users": [{"login": u} for u in restrictions.get("users", [])],
                    "teams": [{"slug": t} for t in restrictions.get("teams", [])],
                    "apps": [],
                }
                if restrictions
                else None
            ),
            "allow_force_pushes": {"enabled": bool(body.get("allow_force_pushes"))},
            "allow_deletions": {"enabled": bool(body.get("allow_deletions"))},
        }
        self.protection[(repository, branch)] = {k: v for k, v in stored.items() if v is not None}
        return _json(self.protection[(repository, branch)])

    def _review(self, repository: str, run_id: int, body) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("environment_name"), str):
            return _error(422, 'Invalid request. "environment_name" wasn\'t supplied.')
        comment = body.get("comment", "")
        if not isinstance(comment, str) or len(comment) > 1024:
            return _error(422, 'Invalid request. "comment" is too long (maximum is 1024 characters).')
        state = body.get("state")
        run = self.runs.get((repository, run_id))
        environment = body["environment_name"]
        if run is None:
            return _error(404, "Not Found")
        if state is None:  # a status report while waiting
            if environment not in run.waiting or len(run.status_reports) >= 10:
                return _error(422, "No pending deployment requests to report on")
            run.status_reports.append(body)
            return Response(status=204)
        if state not in ("approved", "rejected"):
            return _error(422, 'Invalid request. "state" must be approved or rejected.')
        if environment not in run.waiting:
            return _error(422, "No pending deployment requests to approve or reject")
        run.waiting.discard(environment)
        run.decisions.append(body)
        return Response(status=204)
