"""A fake Jenkins: a real local HTTP server (pytest-httpserver) speaking the endpoints the portal uses.

Served under a context path (``/jenkins``, as many installations are) with folder jobs
(``/job/<a>/job/<b>/<number>/``). It implements Jenkins' documented shapes and errors for:

- ``GET /crumbIssuer/api/json`` (``{"crumb", "crumbRequestField": "Jenkins-Crumb"}``, bound to the
  ``JSESSIONID`` cookie it sets; 404 when the crumb issuer is off)
- ``GET /whoAmI/api/json``
- ``GET <job>/api/json`` (builds), ``GET <job>/wfapi/runs``
- ``GET <build>/api/json`` (``building``, ``result``, ``timestamp``, ``actions`` with the
  ``ApproverAction`` Jenkins adds when an input is proceeded and the Git plugin's ``lastBuiltRevision``)
- ``GET <build>/wfapi/describe`` (the run and its stages), ``GET <build>/wfapi/pendingInputActions``
- ``POST <build>/input/<id>/proceedEmpty``, ``…/submit`` (form ``proceed`` + ``json`` with
  ``{"parameter": [{"name", "value"}]}``; answers with a redirect to the console), ``…/abort``

Every call needs HTTP basic ``user:token`` (401 otherwise, as with a wrong API token); POSTs need the
crumb header for the caller's session when ``crumbs`` is on (403 "No valid crumb was included in the
request"); only a submitter of the input may answer it (403). An unknown build or input is 404, a
GET on a POST endpoint 405. ``fail(key, ...)`` queues answers (status, headers) or ``"timeout"``
(the fake sleeps longer than the client waits) to give before the normal one.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote

from werkzeug import Request, Response

CONTEXT = "/jenkins"
APPROVER_ACTION = "org.jenkinsci.plugins.workflow.support.steps.input.ApproverAction"


@dataclass
class Call:
    method: str
    path: str
    query: str
    form: dict
    user: str
    crumb: str
    status: int = 0


@dataclass
class FakeInput:
    id: str
    message: str = "Waiting for the deployment portal"
    submitter: str = "deployment-portal"
    parameters: list[str] = field(default_factory=list)
    answer: str = ""
    values: dict = field(default_factory=dict)


@dataclass
class FakeBuild:
    names: tuple[str, ...]
    number: int
    sha: str
    building: bool = True
    result: str | None = None
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))
    inputs: dict[str, FakeInput] = field(default_factory=dict)
    approvers: list[str] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)
    library_sha: str = ""  # a shared library checked out too (its own BuildData)


def _json(data, status=200, headers=None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers or {}, content_type="application/json")


def _html(status: int, text: str, headers=None) -> Response:
    return Response(
        f"<html><body><h1>Error</h1><p>{text}</p></body></html>",
        status=status,
        headers=headers or {},
        content_type="text/html;charset=utf-8",
    )


class FakeJenkins:
    def __init__(self, httpserver, *, user: str = "deployment-portal", token: str = "11a7c0ffee"):
        self.root = httpserver.url_for("/").rstrip("/")
        self.url = self.root + CONTEXT
        self.user, self.token = user, token
        self.other_users: dict[str, str] = {}
        self.crumbs = True
        self.crumb_issuer = True
        self._sessions: dict[str, str] = {}  # JSESSIONID → crumb
        self.builds: dict[tuple[tuple[str, ...], int], FakeBuild] = {}
        self.calls: list[Call] = []
        self.faults: dict[str, list] = {}
        self.sleep_seconds = 3.0
        httpserver.expect_request(re.compile(r"^/.*")).respond_with_handler(self)

    # --- set-up helpers -------------------------------------------------------------------
    def build_url(self, names, number: int) -> str:
        return self.url + "/" + "".join(f"job/{quote(n, safe='')}/" for n in names) + f"{number}/"

    def start_build(
        self,
        names,
        number: int,
        sha: str,
        *,
        input_id: str = "Portal",
        parameters=(),
        submitter: str | None = None,
        waiting: bool = True,
        stage: str = "Deploy",
    ) -> FakeBuild:
        """A running build whose gate stage passed and which (``waiting``) is paused on an input."""
        build = FakeBuild(tuple(names), number, sha)
        build.stages = [
            {"id": "6", "name": "Build", "status": "SUCCESS"},
            {"id": "14", "name": "Portal approval", "status": "IN_PROGRESS"},
            {"id": "21", "name": stage, "status": "NOT_EXECUTED"},
        ]
        if waiting:
            self.wait(build, input_id, parameters=parameters, submitter=submitter)
        self.builds[(build.names, number)] = build
        return build

    def wait(self, build: FakeBuild, input_id: str, *, parameters=(), submitter=None) -> FakeInput:
        input_id = input_id[:1].upper() + input_id[1:]  # Jenkins capitalizes input ids
        step = FakeInput(input_id, parameters=list(parameters), submitter=submitter or self.user)
        build.inputs[input_id] = step
        build.stages[1]["status"] = "PAUSED_PENDING_INPUT"
        return step

    def deploy(self, build: FakeBuild, status: str = "SUCCESS", *, finish: bool = True) -> None:
        """The build goes on past the input: its deploy stage runs (and the build ends)."""
        build.stages[1]["status"] = "SUCCESS"
        build.stages[2]["status"] = "IN_PROGRESS" if not finish else status
        if finish:
            build.building = False
            build.result = {"SUCCESS": "SUCCESS", "FAILED": "FAILURE", "ABORTED": "ABORTED"}.get(status, status)

    def fail(self, key: str, *answers) -> None:
        """Queue answers for ``key`` ("crumb", "pending", "build", "describe", "post", "job", "whoami"):
        ``(status, headers)`` or ``"timeout"``."""
        self.faults.setdefault(key, []).extend(answers)

    def expire_crumbs(self) -> None:
        self._sessions.clear()

    def posts(self, suffix: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.path.endswith(suffix)]

    # --- the server ------------------------------------------------------------------------
    def __call__(self, request: Request) -> Response:
        call = Call(
            request.method,
            request.path,
            request.query_string.decode(),
            {},
            "",
            request.headers.get("Jenkins-Crumb", ""),
        )
        if request.method == "POST":
            call.form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        self.calls.append(call)
        response = self._answer(request, call)
        call.status = response.status_code
        return response

    def _fault(self, key: str) -> Response | None:
        queued = self.faults.get(key)
        if not queued:
            return None
        answer = queued.pop(0)
        if answer == "timeout":
            time.sleep(self.sleep_seconds)
            return _json({})
        status, headers = answer
        return _html(status, "Service unavailable" if status >= 500 else "Too many requests", headers)

    def _authenticate(self, request: Request, call: Call) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, token = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        expected = self.token if user == self.user else self.other_users.get(user)
        if expected is None or not secrets.compare_digest(token, expected):
            return None
        call.user = user
        return user

    def _answer(self, request: Request, call: Call) -> Response:
        user = self._authenticate(request, call)
        if user is None:
            return _html(401, "Invalid password/token for user", {"WWW-Authenticate": 'Basic realm="Jenkins"'})
        if not request.path.startswith(CONTEXT + "/"):
            return _html(404, "Not Found")
        path = request.path[len(CONTEXT) :]
        if path == "/crumbIssuer/api/json":
            return self._fault("crumb") or self._crumb(request)
        if path == "/whoAmI/api/json":
            return self._fault("whoami") or _json(
                {
                    "_class": "hudson.security.WhoAmI",
                    "anonymous": False,
                    "authenticated": True,
                    "authorities": ["authenticated"],
                    "name": user,
                }
            )
        segments = [s for s in path.split("/") if s]
        names, rest = [], segments
        while len(rest) >= 2 and rest[0] == "job":
            names.append(unquote(rest[1]))
            rest = rest[2:]
        if not names:
            return _html(404, "Not Found")
        if rest and rest[0].isdigit():
            build = self.builds.get((tuple(names), int(rest[0])))
            if build is None:
                return _html(404, "Not Found")
            return self._build_endpoint(request, call, build, rest[1:])
        return self._job_endpoint(request, tuple(names), rest)

    def _crumb(self, request: Request) -> Response:
        if not self.crumb_issuer:
            return _html(404, "Not Found")
        session = request.cookies.get("JSESSIONID") or secrets.token_hex(8)
        crumb = self._sessions.setdefault(session, secrets.token_hex(16))
        response = _json(
            {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": crumb, "crumbRequestField": "Jenkins-Crumb"}
        )
        response.set_cookie("JSESSIONID", session, path=CONTEXT + "/", httponly=True)
        return response

    def _job_endpoint(self, request: Request, names: tuple[str, ...], rest: list[str]) -> Response:
        builds = sorted((b for b in self.builds.values() if b.names == names), key=lambda b: -b.number)
        known = any(b.names[: len(names)] == names for b in self.builds.values())
        if not known:
            return _html(404, "Not Found")
        if rest == ["api", "json"]:
            return self._fault("job") or _json(
                {
                    "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                    "name": names[-1],
                    "builds": [
                        {
                            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                            "number": b.number,
                            "url": self.build_url(names, b.number),
                            "building": b.building,
                            "result": b.result,
                            "timestamp": b.timestamp,
                        }
                        for b in builds
                    ],
                }
            )
        if rest == ["wfapi", "runs"]:
            return _json([{"id": str(b.number), "name": f"#{b.number}"} for b in builds])
        return _html(404, "Not Found")

    def _build_endpoint(self, request: Request, call: Call, build: FakeBuild, rest: list[str]) -> Response:
        if rest == ["api", "json"]:
            return self._fault("build") or _json(self._build_json(build))
        if rest == ["wfapi", "describe"]:
            return self._fault("describe") or _json(
                {
                    "id": str(build.number),
                    "name": f"#{build.number}",
                    "status": self._run_status(build),
                    "stages": build.stages,
                }
            )
        if rest == ["wfapi", "pendingInputActions"]:
            return self._fault("pending") or _json([self._pending_json(build, i) for i in build.inputs.values()])
        if len(rest) == 3 and rest[0] == "input" and rest[2] in ("proceedEmpty", "submit", "abort"):
            if request.method != "POST":
                return _html(405, "HTTP method GET is not supported by this URL")
            if self.crumbs and not self._crumb_ok(request):
                return _html(403, "No valid crumb was included in the request")
            fault = self._fault("post")
            if fault is not None:
                return fault
            step = build.inputs.get(rest[1])
            if step is None:
                return _html(404, "Not Found")
            if call.user not in step.submitter.split(","):
                return _html(403, f"You need to be {step.submitter} to submit this")
            return self._settle(request, build, step, rest[2], call.user)
        return _html(404, "Not Found")

    def _crumb_ok(self, request: Request) -> bool:
        session = request.cookies.get("JSESSIONID", "")
        crumb = request.headers.get("Jenkins-Crumb", "")
        return bool(crumb) and self._sessions.get(session) == crumb

    def _settle(self, request: Request, build: FakeBuild, step: FakeInput, action: str, user: str) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        if action == "submit" and "proceed" not in form:
            action = "abort"
        if action == "submit":
            try:
                parameters = json.loads(form.get("json", "")).get("parameter", [])
            except (ValueError, AttributeError):
                return _html(400, "This page expects a form submission")
            for item in parameters if isinstance(parameters, list) else [parameters]:
                if item.get("name") not in step.parameters:
                    return _html(
                        500, f"java.lang.IllegalArgumentException: No such parameter definition: {item.get('name')}"
                    )
                step.values[item["name"]] = item.get("value")
        del build.inputs[step.id]
        if action == "abort":
            step.answer = "abort"
            build.building, build.result = False, "ABORTED"
            build.stages[1]["status"] = "ABORTED"
            return Response("", status=200)
        step.answer = "proceed"
        build.approvers.append(user)
        build.stages[1]["status"] = "SUCCESS"
        if action == "submit":
            return Response("", status=302, headers={"Location": "../../console"})
        return Response("", status=200)

    def _build_json(self, build: FakeBuild) -> dict:
        actions = [{"_class": "hudson.plugins.git.util.BuildData", "lastBuiltRevision": {"SHA1": build.library_sha}}]
        actions = (actions if build.library_sha else []) + [
            {"_class": "hudson.model.CauseAction"},
            {
                "_class": "hudson.plugins.git.util.BuildData",
                "lastBuiltRevision": {
                    "SHA1": build.sha,
                    "branch": [{"SHA1": build.sha, "name": "refs/remotes/origin/main"}],
                },
            },
        ]
        actions += [{"_class": APPROVER_ACTION, "userId": u} for u in build.approvers]
        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
            "number": build.number,
            "url": self.build_url(build.names, build.number),
            "building": build.building,
            "result": build.result,
            "timestamp": build.timestamp,
            "duration": 0,
            "actions": actions,
        }

    def _pending_json(self, build: FakeBuild, step: FakeInput) -> dict:
        base = CONTEXT + "/" + "".join(f"job/{quote(n, safe='')}/" for n in build.names) + f"{build.number}"
        return {
            "id": step.id,
            "proceedText": "Proceed",
            "message": step.message,
            "inputs": [
                {
                    "type": "StringParameterDefinition",
                    "name": name,
                    "description": "",
                    "definition": {"defaultParameterValue": {"name": name, "value": ""}},
                }
                for name in step.parameters
            ],
            "proceedUrl": f"{base}/wfapi/inputSubmit?inputId={step.id}",
            "abortUrl": f"{base}/input/{step.id}/abort",
            "redirectApprovalUrl": f"{base}/input/",
        }

    @staticmethod
    def _run_status(build: FakeBuild) -> str:
        if build.inputs:
            return "PAUSED_PENDING_INPUT"
        if build.building:
            return "IN_PROGRESS"
        return {"SUCCESS": "SUCCESS", "FAILURE": "FAILED", "ABORTED": "ABORTED"}.get(build.result or "", "FAILED")
