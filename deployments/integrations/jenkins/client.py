"""The one client for the Jenkins endpoints the portal uses, as the portal's Jenkins user.

Every call:

1. goes to the configured ``JENKINS_URL`` only (same scheme, host, port and context path) through the
   outbound URL policy's session (``portal.outbound``: https unless the host is allow-listed, the
   address checked at connect, no proxies, no redirects followed);
2. authenticates with HTTP basic ``JENKINS_USER:JENKINS_API_TOKEN`` (Jenkins' API-token scheme);
3. for POSTs, carries the CSRF crumb when Jenkins has a crumb issuer (``GET /crumbIssuer/api/json``,
   kept with the session cookie it is bound to; a 403 saying the crumb is invalid or expired
   fetches a fresh one once);
4. runs within the client's total deadline: each call's timeout is what remains of it, and a body
   that trickles in is cut off when the deadline passes.

The endpoints (Jenkins' documented remote API and the Pipeline plugins' REST endpoints):
``<build>/api/json``, ``<build>/wfapi/describe``, ``<build>/wfapi/pendingInputActions``,
``<build>/input/<id>/proceedEmpty``, ``<build>/input/<id>/submit``, ``<build>/input/<id>/abort``,
``<job>/api/json``, ``/whoAmI/api/json``, ``/crumbIssuer/api/json``. The API token is never logged nor
put in an error message. api4jenkins covers pending inputs too, but it calls Jenkins through httpx,
outside the outbound URL policy's checked connections, so the portal speaks these few endpoints itself.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import requests
from django.conf import settings

from deployments.delivery.providers.base import retry_after_seconds
from portal import outbound

MAX_BODY_BYTES = 2 * 1024 * 1024
USER_AGENT = "deployment-authorization-portal"
_INPUT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]{0,99}$")
_CRUMB_WORDS = ("crumb",)


class JenkinsError(Exception):
    """A call to Jenkins failed: not reached, too slow, or an answer the caller did not expect."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None, permanent: bool = False
    ):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.permanent = permanent


class JenkinsNotConfigured(JenkinsError):
    def __init__(self, message: str):
        super().__init__(message, permanent=True)


def configured_problem() -> str | None:
    """What is missing for the portal to call Jenkins, or None."""
    missing = [name for name in ("JENKINS_URL", "JENKINS_USER", "JENKINS_API_TOKEN") if not getattr(settings, name)]
    if missing:
        return f"{', '.join(missing)} must be set for the portal to answer Jenkins input steps."
    return None


def jenkins_configured() -> bool:
    return configured_problem() is None


# --- URLs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildRef:
    """A build on the configured Jenkins: ``url`` is canonical (the base URL, the job's encoded
    segments, the number and a trailing slash), ``names`` the job's decoded names."""

    url: str
    names: tuple[str, ...]
    number: int

    @property
    def job_path(self) -> str:
        return "/".join(self.names)

    @property
    def job_url(self) -> str:
        return self.url[: self.url.rstrip("/").rfind("/") + 1]


def _base() -> tuple[str, str]:
    parts = urlsplit(settings.JENKINS_URL)
    return f"{parts.scheme}://{parts.netloc}".lower(), parts.path.rstrip("/")


def on_jenkins(url: str) -> bool:
    """True when ``url`` is on the configured Jenkins (scheme, host, port, under its context path)."""
    if not settings.JENKINS_URL:
        return False
    try:
        parts = urlsplit(url or "")
        parts.port  # noqa: B018  (a bad port raises)
    except ValueError:
        return False
    if parts.username or parts.password or parts.query or parts.fragment:
        return False
    origin, root = _base()
    return f"{parts.scheme}://{parts.netloc}".lower() == origin and (parts.path + "/").startswith(root + "/")


def parse_build_url(url: str) -> BuildRef:
    """The build ``url`` names (``<JENKINS_URL>/job/<a>/job/<b>/<number>/``); ``ValueError`` with the
    reason when it is not a build URL on the configured Jenkins."""
    if not settings.JENKINS_URL:
        raise ValueError("no Jenkins is configured (JENKINS_URL)")
    if not on_jenkins(url):
        raise ValueError(f"it is not on the configured Jenkins ({settings.JENKINS_URL})")
    origin, root = _base()
    rest = urlsplit(url).path[len(root) :].strip("/")
    segments = rest.split("/") if rest else []
    if len(segments) < 3 or len(segments) % 2 == 0 or not segments[-1].isdigit():
        raise ValueError("it is not a build URL (…/job/<name>/<number>/)")
    pairs = segments[:-1]
    if any(pairs[i] != "job" or not pairs[i + 1] for i in range(0, len(pairs), 2)):
        raise ValueError("it is not a build URL (…/job/<name>/<number>/)")
    names = tuple(unquote(pairs[i + 1]) for i in range(0, len(pairs), 2))
    if any(name in (".", "..") or not name.isprintable() for name in names):
        raise ValueError("a job name in it is not valid")
    number = int(segments[-1])
    if number <= 0:
        raise ValueError("its build number is not positive")
    encoded = "/".join(f"job/{quote(name, safe='')}" for name in names)
    return BuildRef(url=f"{origin}{root}/{encoded}/{number}/", names=names, number=number)


def job_url(names: tuple[str, ...] | list[str]) -> str:
    origin, root = _base()
    return f"{origin}{root}/" + "".join(f"job/{quote(name, safe='')}/" for name in names)


def input_id_problem(value: str) -> str | None:
    if not isinstance(value, str) or not _INPUT_ID_RE.match(value):
        return "the input id must be 1 to 100 letters, digits, '-', '_', '.' or '~', starting with a letter or digit"
    return None


def jenkins_input_id(value: str) -> str:
    """The id as Jenkins uses it in URLs: Jenkins capitalizes the first letter of an input's id."""
    return value[:1].upper() + value[1:]


# --- the client -------------------------------------------------------------------------------------


class JenkinsClient:
    """Calls the configured Jenkins within one total deadline (seconds from creation)."""

    def __init__(self, *, deadline_seconds: float | None = None, session: requests.Session | None = None):
        problem = configured_problem()
        if problem:
            raise JenkinsNotConfigured(problem)
        self.timeout = settings.PORTAL_HTTP_TIMEOUT
        total = deadline_seconds if deadline_seconds is not None else self.timeout * 2
        self.deadline = time.monotonic() + total
        self.total = total
        self.session = session or outbound.session()
        self.session.auth = (settings.JENKINS_USER, settings.JENKINS_API_TOKEN)
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self._crumb: dict[str, str] | None = None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> JenkinsClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def url(self, path: str) -> str:
        return settings.JENKINS_URL.rstrip("/") + "/" + path.lstrip("/")

    # --- one call -----------------------------------------------------------------------------
    def _remaining(self, shown: str) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise JenkinsError(f"{shown}: no answer within the {self.total:g} s deadline")
        return remaining

    def call(
        self, method: str, url: str, *, data=None, headers: dict | None = None, params: dict | None = None
    ) -> tuple[requests.Response, bytes]:
        """One call on the configured Jenkins; the response (whatever its status) and its body.
        Raises ``JenkinsError`` when Jenkins could not be reached in time or the URL is elsewhere."""
        shown = f"{method} {urlsplit(url).path}"
        if not on_jenkins(url):
            raise JenkinsError(
                f"Refusing to call {urlsplit(url).netloc!r}: not the configured Jenkins.", permanent=True
            )
        timeout = min(self.timeout, self._remaining(shown))
        try:
            response = self.session.request(
                method,
                url,
                data=data,
                headers=headers,
                params=params,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            )
            body = self._read(response, shown)
        except outbound.OutboundRefused as exc:
            raise JenkinsError(str(exc), permanent=True) from None
        except requests.RequestException as exc:
            raise JenkinsError(f"{shown}: {outbound.describe_failure(exc, timeout=timeout)}") from None
        return response, body

    def _read(self, response: requests.Response, shown: str) -> bytes:
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise JenkinsError(f"{shown}: the answer is larger than {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
                self._remaining(shown)
        finally:
            response.close()
        return b"".join(chunks)

    def get_json(self, url: str, *, params: dict | None = None):
        """GET ``url`` (a full URL on Jenkins); the JSON body, or ``JenkinsError`` for any other answer."""
        response, body = self.call("GET", url, params=params)
        if response.status_code != 200:
            raise failure(response, f"GET {urlsplit(url).path}")
        try:
            return json.loads(body)
        except ValueError:
            raise JenkinsError(f"GET {urlsplit(url).path} answered with a body that is not JSON.") from None

    # --- crumbs and POSTs -----------------------------------------------------------------------
    def crumb(self, *, refresh: bool = False) -> dict[str, str]:
        """The crumb header (``{"Jenkins-Crumb": "…"}``), or ``{}`` when Jenkins has no crumb issuer."""
        if self._crumb is not None and not refresh:
            return self._crumb
        response, body = self.call("GET", self.url("crumbIssuer/api/json"))
        if response.status_code == 404:
            self._crumb = {}
            return self._crumb
        if response.status_code != 200:
            raise failure(response, "GET /crumbIssuer/api/json")
        try:
            data = json.loads(body)
            self._crumb = {str(data["crumbRequestField"]): str(data["crumb"])}
        except (ValueError, KeyError, TypeError):
            raise JenkinsError("GET /crumbIssuer/api/json answered with an unexpected body.") from None
        return self._crumb

    def post(self, url: str, *, form: dict | None = None) -> tuple[requests.Response, bytes]:
        """POST (form-encoded) with the crumb; one fresh crumb after a 403 about the crumb."""
        for attempt in (1, 2):
            headers = dict(self.crumb(refresh=attempt == 2))
            response, body = self.call("POST", url, data=form or {}, headers=headers)
            if response.status_code == 403 and attempt == 1 and _mentions_crumb(body):
                continue
            return response, body
        return response, body  # pragma: no cover - the loop always returns

    # --- the endpoints --------------------------------------------------------------------------
    def build(self, build_url: str) -> dict:
        """``<build>/api/json``: number, building, result, timestamp, the approvers and the commit built."""
        tree = "number,url,building,result,timestamp,duration,actions[userId,lastBuiltRevision[SHA1]]"
        return self.get_json(build_url + "api/json", params={"tree": tree})

    def describe(self, build_url: str) -> dict:
        """``<build>/wfapi/describe``: the run's status and its stages (name, status)."""
        return self.get_json(build_url + "wfapi/describe")

    def pending_inputs(self, build_url: str) -> list[dict]:
        """``<build>/wfapi/pendingInputActions``: the input steps the build is paused on."""
        data = self.get_json(build_url + "wfapi/pendingInputActions")
        if not isinstance(data, list):
            raise JenkinsError("wfapi/pendingInputActions answered with something that is not a list.")
        return [item for item in data if isinstance(item, dict)]

    def job_builds(self, names, *, limit: int = 50) -> list[dict]:
        """``<job>/api/json``: the job's newest builds (number, url, building, result, timestamp)."""
        data = self.get_json(
            job_url(names) + "api/json", params={"tree": f"builds[number,url,building,result,timestamp]{{0,{limit}}}"}
        )
        builds = data.get("builds") if isinstance(data, dict) else None
        return [b for b in builds or [] if isinstance(b, dict)]

    def who_am_i(self) -> dict:
        return self.get_json(self.url("whoAmI/api/json"))


def _mentions_crumb(body: bytes) -> bool:
    text = body[:4000].decode(errors="replace").lower()
    return any(word in text for word in _CRUMB_WORDS)


def failure(response: requests.Response, shown: str) -> JenkinsError:
    """A ``JenkinsError`` for an unexpected answer: 429/5xx/408 retryable (with ``Retry-After``), others
    permanent. The message has the status only: Jenkins' error pages are HTML, sometimes with stack traces."""
    code = response.status_code
    retryable = code >= 500 or code in (408, 409, 425, 429)
    return JenkinsError(
        f"{shown} answered {outbound.describe_status(code)}",
        status_code=code,
        retry_after=retry_after_seconds(response.headers),
        permanent=not retryable,
    )
