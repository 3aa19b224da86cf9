"""A fake GitLab: a real local HTTP server (pytest-httpserver) speaking the REST API v4 the portal uses.

Documented paths, methods, status codes, headers and JSON fields for:

- ``GET /api/v4/user``, ``GET /api/v4/projects/:id`` (``:id`` numeric or the URL-encoded path)
- ``GET /projects/:id/deployments`` (``environment``, ``status``, ``updated_after``, ``order_by``,
  ``sort``; ``page``/``per_page`` with ``X-Page``, ``X-Next-Page``, ``X-Total``… and ``Link``),
  ``GET /projects/:id/deployments/:deployment_id``,
  ``POST /projects/:id/deployments/:deployment_id/approval`` (``status``, ``comment``, ``represented_as``)
- ``GET /projects/:id/jobs/:job_id``, ``POST /projects/:id/jobs/:job_id/play``,
  ``GET /projects/:id/pipelines/:pipeline_id/jobs``
- ``GET /projects/:id/repository/compare?from=&to=``, ``GET …/repository/commits/:sha/statuses``,
  ``GET …/repository/commits/:sha/merge_requests``
- ``GET/POST /projects/:id/protected_branches``, ``DELETE /projects/:id/protected_branches/:name``,
  ``GET/PUT /projects/:id/protected_environments/:name``, ``POST /projects/:id/protected_environments``
  (``approval_rules`` with ``user_id``/``required_approvals``; an ``id`` updates that rule),
  ``GET /projects/:id/hooks``
- ``GET/POST /projects/:id/freeze_periods``, ``GET/PUT/DELETE /projects/:id/freeze_periods/:id``
  (``freeze_start``, ``freeze_end`` cron expressions, ``cron_timezone``)

Every call must carry the token in ``PRIVATE-TOKEN`` (401 otherwise) and is recorded. ``fail(key,
…)`` queues error answers and ``delay[key]`` makes the answer slow, per endpoint key.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlencode

from werkzeug import Request, Response

TOKEN = "glpat-portal-bot-test-3f9a1c"
BOT = {
    "id": 77,
    "username": "portal-bot",
    "name": "Deployment portal",
    "state": "active",
    "web_url": "https://gitlab.example.com/portal-bot",
}


@dataclass
class Call:
    method: str
    path: str
    query: dict
    json: object
    headers: dict
    status: int = 0


def _json(data, status=200, headers=None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers or {}, content_type="application/json")


def _error(status: int, message: str, headers=None) -> Response:
    return _json({"message": message}, status, headers)


def stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def user(username: str, uid: int = 5) -> dict:
    return {
        "id": uid,
        "username": username,
        "name": username.title(),
        "state": "active",
        "web_url": f"https://gitlab.example.com/{username}",
    }


class FakeGitLab:
    def __init__(self, httpserver):
        self.url = httpserver.url_for("/").rstrip("/")
        self.calls: list[Call] = []
        self.projects: dict[str, dict] = {}
        self.deployments: dict[str, list[dict]] = {}
        self.jobs: dict[int, dict] = {}
        self.pipelines: dict[int, list[int]] = {}
        self.statuses: dict[tuple[str, str], list[dict]] = {}
        self.compares: dict[tuple[str, str, str], dict] = {}
        self.merge_requests: dict[tuple[str, str], list[dict]] = {}
        self.protected_environments: dict[tuple[str, str], dict] = {}
        self.protected_branches: dict[str, list[dict]] = {}
        self.hooks: dict[str, list[dict]] = {}
        self.freeze_periods: dict[str, list[dict]] = {}
        self.faults: dict[str, list[tuple[int, dict]]] = {}
        self.delay: dict[str, float] = {}
        self.required_approvals = 1
        self._ids = itertools.count(1)
        httpserver.expect_request(re.compile(r"^/.*")).respond_with_handler(self)

    # --- set-up helpers -------------------------------------------------------------------
    def add_project(self, path: str, project_id: int = 4242) -> dict:
        self.projects[path] = {
            "id": project_id,
            "path_with_namespace": path,
            "name": path.rsplit("/", 1)[1],
            "web_url": f"{self.url}/{path}",
            "default_branch": "main",
        }
        return self.projects[path]

    def fail(self, key: str, *answers: tuple[int, dict]) -> None:
        """Queue answers (status 0: answer normally) for ``key``: "user", "project", "deployments",
        "deployment", "approval", "play", "job", "pipeline-jobs",
        "statuses", "merge-requests", "compare", "protected", "protect", "freeze"."""
        self.faults.setdefault(key, []).extend(answers)

    def add_job(
        self,
        project: str,
        *,
        name: str,
        status: str,
        pipeline_id: int,
        sha: str,
        started: bool | None = None,
        stage: str = "test",
    ) -> dict:
        job_id = 9000 + next(self._ids)
        now = datetime.now(UTC)
        started = status not in ("created", "pending", "manual", "skipped") if started is None else started
        job = {
            "id": job_id,
            "name": name,
            "status": status,
            "stage": stage,
            "ref": "main",
            "tag": False,
            "allow_failure": False,
            "created_at": stamp(now),
            "started_at": stamp(now) if started else None,
            "finished_at": None,
            "user": user("bob-gl"),
            "commit": {"id": sha, "short_id": sha[:8]},
            "pipeline": {
                "id": pipeline_id,
                "project_id": self.projects[project]["id"],
                "sha": sha,
                "ref": "main",
                "status": "running",
                "web_url": f"{self.url}/{project}/-/pipelines/{pipeline_id}",
            },
            "web_url": f"{self.url}/{project}/-/jobs/{job_id}",
        }
        self.jobs[job_id] = job
        self.pipelines.setdefault(pipeline_id, []).append(job_id)
        return job

    def add_deployment(
        self,
        project: str,
        environment: str,
        sha: str,
        *,
        status: str = "blocked",
        ref: str = "main",
        username: str = "bob-gl",
        pipeline_id: int = 555,
        job_status: str | None = None,
        at: datetime | None = None,
        deployment_id: int | None = None,
    ) -> dict:
        """A deployment as GitLab makes it for a job with ``environment:`` (its ``deployable``)."""
        at = at or datetime.now(UTC)
        job_status = (
            job_status
            or {
                "blocked": "manual",
                "running": "running",
                "success": "success",
                "failed": "failed",
                "canceled": "canceled",
                "created": "created",
            }[status]
        )
        job = self.add_job(
            project, name=f"deploy-{environment}", status=job_status, pipeline_id=pipeline_id, sha=sha, stage="deploy"
        )
        deployment_id = deployment_id or 300 + next(self._ids)
        deployment = {
            "id": deployment_id,
            "iid": len(self.deployments.get(project, [])) + 1,
            "ref": ref,
            "sha": sha,
            "created_at": stamp(at),
            "updated_at": stamp(at),
            "status": status,
            "user": user(username),
            "environment": {"id": 9, "name": environment, "external_url": "https://billing.example.com"},
            "deployable": job,
            "approvals": [],
            "pending_approval_count": self.required_approvals,
        }
        self.deployments.setdefault(project, []).append(deployment)
        return deployment

    def set_status(self, deployment: dict, status: str, *, started: bool = True) -> None:
        deployment["status"] = status
        deployment["updated_at"] = stamp(datetime.now(UTC))
        job = deployment["deployable"]
        job["status"] = {"running": "running", "success": "success", "failed": "failed", "canceled": "canceled"}.get(
            status, job["status"]
        )
        if started and not job["started_at"]:
            job["started_at"] = stamp(datetime.now(UTC))

    def calls_to(self, pattern: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if re.search(pattern, c.path) and (method is None or c.method == method)]

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
        self._raw_path = path
        call = Call(request.method, path, {k: v[-1] for k, v in parse_qs(query).items()}, body, dict(request.headers))
        self.calls.append(call)
        response = self._route(request, path, call.query, body)
        call.status = response.status_code
        return response

    def _fault(self, key: str) -> Response | None:
        if self.delay.get(key):
            time.sleep(self.delay[key])
        queue = self.faults.get(key)
        if not queue:
            return None
        status, headers = queue.pop(0)
        if status == 0:  # a queued "answer normally": fail a later call of the same endpoint
            return None
        messages = {429: "Retry later", 401: "401 Unauthorized", 403: "403 Forbidden", 404: "404 Not found"}
        return _error(status, messages.get(status, "500 Internal Server Error"), headers)

    def _route(self, request: Request, path: str, query: dict, body) -> Response:
        if request.headers.get("PRIVATE-TOKEN") != TOKEN:
            return _error(401, "401 Unauthorized")
        if path == "/api/v4/user" and request.method == "GET":
            return self._fault("user") or _json(BOT)
        m = re.fullmatch(r"/api/v4/projects/([^/]+)(/.*)?", path)
        if not m:
            return _error(404, "404 Not Found")
        project = self._project(unquote(m.group(1)))
        if project is None:
            return _error(404, "404 Project Not Found")
        rest = m.group(2) or ""
        if not rest and request.method == "GET":
            return self._fault("project") or _json(self.projects[project])
        return self._project_route(request, project, rest, query, body)

    def _project(self, key: str) -> str | None:
        for path, data in self.projects.items():
            if key == path or key == str(data["id"]):
                return path
        return None

    def _project_route(self, request, project: str, rest: str, query: dict, body) -> Response:
        method = request.method
        if rest == "/deployments" and method == "GET":
            return self._fault("deployments") or self._list_deployments(request, project, query)
        m = re.fullmatch(r"/deployments/(\d+)(/approval)?", rest)
        if m:
            deployment = next((d for d in self.deployments.get(project, []) if d["id"] == int(m.group(1))), None)
            if deployment is None:
                return _error(404, "404 Deployment Not Found")
            if m.group(2) and method == "POST":
                return self._fault("approval") or self._approve(deployment, body)
            if not m.group(2) and method == "GET":
                return self._fault("deployment") or _json(deployment)
        m = re.fullmatch(r"/jobs/(\d+)(/play)?", rest)
        if m:
            job = self.jobs.get(int(m.group(1)))
            if job is None:
                return _error(404, "404 Not found")
            if m.group(2) and method == "POST":
                return self._fault("play") or self._play(project, job)
            if not m.group(2) and method == "GET":
                return self._fault("job") or _json(job)
        m = re.fullmatch(r"/pipelines/(\d+)/jobs", rest)
        if m and method == "GET":
            jobs = [self.jobs[j] for j in self.pipelines.get(int(m.group(1)), [])]
            return self._fault("pipeline-jobs") or self._paginated(request, query, jobs)
        m = re.fullmatch(r"/repository/commits/([0-9a-f]{40})/(statuses|merge_requests)", rest)
        if m and method == "GET":
            if m.group(2) == "statuses":
                return self._fault("statuses") or self._paginated(
                    request, query, self.statuses.get((project, m.group(1)), [])
                )
            return self._fault("merge-requests") or _json(self.merge_requests.get((project, m.group(1)), []))
        if rest == "/repository/compare" and method == "GET":
            fault = self._fault("compare")
            if fault:
                return fault
            key = (project, query.get("from", ""), query.get("to", ""))
            if key not in self.compares:
                return _error(404, "404 Ref Not Found")
            return _json(self.compares[key])
        if rest == "/protected_branches" and method == "GET":
            return self._fault("protected") or self._paginated(request, query, self.protected_branches.get(project, []))
        if rest == "/protected_branches" and method == "POST":
            return self._fault("protect") or self._protect_branch(project, body)
        m = re.fullmatch(r"/protected_branches/([^/]+)", rest)
        if m and method == "DELETE":
            return self._fault("protect") or self._unprotect_branch(project, unquote(m.group(1)))
        if rest == "/protected_environments" and method == "POST":
            return self._fault("protect") or self._protect_environment(project, body)
        m = re.fullmatch(r"/protected_environments/([^/]+)", rest)
        if m and method == "GET":
            found = self.protected_environments.get((project, unquote(m.group(1))))
            return self._fault("protected") or (_json(found) if found else _error(404, "404 Not found"))
        if m and method == "PUT":
            return self._fault("protect") or self._update_environment(project, unquote(m.group(1)), body)
        if rest == "/freeze_periods" or rest.startswith("/freeze_periods/"):
            return self._fault("freeze") or self._freeze_route(request, project, rest, query, body)
        if rest == "/hooks" and method == "GET":
            return self._paginated(request, query, self.hooks.get(project, []))
        return _error(404, "404 Not Found")

    def _list_deployments(self, request, project: str, query: dict) -> Response:
        found = list(self.deployments.get(project, []))
        for key in ("status",):
            if key in query:
                found = [d for d in found if d[key] == query[key]]
        if "environment" in query:
            found = [d for d in found if d["environment"]["name"] == query["environment"]]
        if "updated_after" in query:
            after = datetime.fromisoformat(query["updated_after"].replace("Z", "+00:00"))
            found = [d for d in found if datetime.fromisoformat(d["updated_at"].replace("Z", "+00:00")) > after]
        if query.get("order_by", "id") not in ("id", "iid", "created_at", "updated_at", "finished_at", "ref"):
            return _error(400, "order_by does not have a valid value")
        found.sort(key=lambda d: d["id"], reverse=query.get("sort", "asc") == "desc")
        return self._paginated(request, query, found)

    def _paginated(self, request, query: dict, items: list) -> Response:
        """One page with GitLab's pagination headers (``X-*`` and ``Link``)."""
        try:
            per_page = min(100, max(1, int(query.get("per_page", 20))))
            page = max(1, int(query.get("page", 1)))
        except ValueError:
            return _error(400, "page is invalid")
        pages = max(1, -(-len(items) // per_page))
        base = self.url + self._raw_path

        def link(number: int, rel: str) -> str:
            return f'<{base}?{urlencode({**query, "page": number, "per_page": per_page})}>; rel="{rel}"'

        links = [link(1, "first"), link(pages, "last")]
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(pages),
            "X-Next-Page": "",
            "X-Prev-Page": "",
        }
        if page < pages:
            links.insert(0, link(page + 1, "next"))
            headers["X-Next-Page"] = str(page + 1)
        if page > 1:
            links.insert(0, link(page - 1, "prev"))
            headers["X-Prev-Page"] = str(page - 1)
        headers["Link"] = ", ".join(links)
        return _json(items[(page - 1) * per_page : page * per_page], headers=headers)

    def _approve(self, deployment: dict, body) -> Response:
        if not isinstance(body, dict) or body.get("status") not in ("approved", "rejected"):
            return _error(400, "status does not have a valid value")
        if "comment" in body and not isinstance(body["comment"], str):
            return _error(400, "comment is invalid")
        if deployment["status"] != "blocked":
            return _error(400, "This deployment job is not waiting for approvals.")
        approval = {
            "user": BOT,
            "status": body["status"],
            "created_at": stamp(datetime.now(UTC)),
            "comment": body.get("comment"),
        }
        if body.get("represented_as"):
            approval["represented_as"] = body["represented_as"]
        deployment["approvals"].append(approval)
        job = deployment["deployable"]
        if body["status"] == "rejected":
            deployment["status"] = "failed"  # the job is dropped: deployment_rejected
            job["status"], job["failure_reason"] = "failed", "deployment_rejected"
        else:
            deployment["pending_approval_count"] = max(0, deployment["pending_approval_count"] - 1)
            if deployment["pending_approval_count"] == 0:
                deployment["status"] = "created"  # unblocked: the manual job may be played
        deployment["updated_at"] = stamp(datetime.now(UTC))
        return _json(approval, 201)

    def _play(self, project: str, job: dict) -> Response:
        if job["status"] != "manual":
            return _error(400, "400 Bad request - Unplayable Job")
        deployment = next((d for d in self.deployments.get(project, []) if d["deployable"]["id"] == job["id"]), None)
        if deployment is not None and deployment["status"] == "blocked":
            return _error(403, "403 Forbidden - The deployment is waiting for approval")
        job["status"] = "pending"
        return _json(job)

    # --- protection writes ------------------------------------------------------------------
    def _protect_branch(self, project: str, body) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            return _error(400, "name is missing")
        branches = self.protected_branches.setdefault(project, [])
        if any(b["name"] == body["name"] for b in branches):
            return _error(409, "Protected branch 'main' already exists")
        levels = {}
        for key in ("push_access_level", "merge_access_level"):
            value = body.get(key, 40)
            if value not in (0, 30, 40, 60):
                return _error(400, f"{key} does not have a valid value")
            levels[key] = value
        branch = {
            "id": next(self._ids),
            "name": body["name"],
            "allow_force_push": bool(body.get("allow_force_push", False)),
            "code_owner_approval_required": False,
            "push_access_levels": [{"access_level": levels["push_access_level"]}],
            "merge_access_levels": [{"access_level": levels["merge_access_level"]}],
        }
        branches.append(branch)
        return _json(branch, 201)

    def _unprotect_branch(self, project: str, name: str) -> Response:
        branches = self.protected_branches.get(project, [])
        if not any(b["name"] == name for b in branches):
            return _error(404, "404 Not found")
        self.protected_branches[project] = [b for b in branches if b["name"] != name]
        return Response(status=204)

    def _approval_rules(self, rules, existing: list[dict]) -> list[dict] | Response:
        if not isinstance(rules, list):
            return _error(400, "approval_rules is invalid")
        out = [dict(r) for r in existing]
        for rule in rules:
            if not isinstance(rule, dict) or not isinstance(rule.get("required_approvals", 1), int):
                return _error(400, "approval_rules is invalid")
            if "id" in rule:
                target = next((r for r in out if r["id"] == rule["id"]), None)
                if target is None:
                    return _error(404, "404 Approval rule Not found")
                target.update({k: v for k, v in rule.items() if k != "id"})
            elif isinstance(rule.get("user_id"), int):
                out.append(
                    {
                        "id": next(self._ids),
                        "user_id": rule["user_id"],
                        "group_id": None,
                        "access_level": None,
                        "required_approvals": rule.get("required_approvals", 1),
                    }
                )
            else:
                return _error(400, "approval_rules is invalid: a rule needs a user_id, group_id or access_level")
        return out

    def _protect_environment(self, project: str, body) -> Response:
        if not isinstance(body, dict) or not body.get("name") or not body.get("deploy_access_levels"):
            return _error(400, "name, deploy_access_levels are missing")
        if (project, body["name"]) in self.protected_environments:
            return _error(409, "Protected environment already exists")
        rules = self._approval_rules(body.get("approval_rules", []), [])
        if isinstance(rules, Response):
            return rules
        found = {
            "name": body["name"],
            "deploy_access_levels": body["deploy_access_levels"],
            "required_approval_count": 0,
            "approval_rules": rules,
        }
        self.protected_environments[(project, body["name"])] = found
        return _json(found, 201)

    def _update_environment(self, project: str, name: str, body) -> Response:
        found = self.protected_environments.get((project, name))
        if found is None:
            return _error(404, "404 Not found")
        rules = self._approval_rules((body or {}).get("approval_rules", []), found["approval_rules"])
        if isinstance(rules, Response):
            return rules
        found["approval_rules"] = rules
        return _json(found)

    # --- freeze periods ---------------------------------------------------------------------
    def _freeze_fields(self, body, *, partial: bool) -> dict | Response:
        if not isinstance(body, dict):
            return _error(400, "freeze_start, freeze_end are missing")
        fields = {}
        for key in ("freeze_start", "freeze_end"):
            if key not in body:
                if partial:
                    continue
                return _error(400, f"{key} is missing")
            value = body[key]
            if not isinstance(value, str) or not CRON.fullmatch(value.strip()):
                return _error(400, f'{{"{key}":["is invalid syntax"]}}')
            fields[key] = value
        if "cron_timezone" in body:
            if body["cron_timezone"] not in ("UTC", "Europe/Paris", "America/New_York"):
                return _error(400, '{"cron_timezone":["is invalid syntax"]}')
            fields["cron_timezone"] = body["cron_timezone"]
        elif not partial:
            fields["cron_timezone"] = "UTC"
        return fields

    def _freeze_route(self, request, project: str, rest: str, query: dict, body) -> Response:
        periods = self.freeze_periods.setdefault(project, [])
        method = request.method
        if rest == "/freeze_periods":
            if method == "GET":
                return self._paginated(request, query, periods)
            if method == "POST":
                fields = self._freeze_fields(body, partial=False)
                if isinstance(fields, Response):
                    return fields
                now = stamp(datetime.now(UTC))
                period = {"id": next(self._ids), **fields, "created_at": now, "updated_at": now}
                periods.append(period)
                return _json(period, 201)
            return _error(405, "405 Method Not Allowed")
        m = re.fullmatch(r"/freeze_periods/(\d+)", rest)
        period = next((p for p in periods if m and p["id"] == int(m.group(1))), None)
        if period is None:
            return _error(404, "404 Freeze Period Not Found")
        if method == "GET":
            return _json(period)
        if method == "PUT":
            fields = self._freeze_fields(body, partial=True)
            if isinstance(fields, Response):
                return fields
            period.update(fields, updated_at=stamp(datetime.now(UTC)))
            return _json(period)
        if method == "DELETE":
            periods.remove(period)
            return Response(status=204)
        return _error(405, "405 Method Not Allowed")


# Five cron fields: numbers, ranges, lists, steps or *.
CRON = re.compile(r"([0-9*,/-]+\s+){4}[0-9*,/-]+")


def since(minutes: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
