"""The one client for GitHub's REST API, authenticated as a GitHub App installation.

Steps for every call:

1. Sign a short JWT with the App's private key (RS256, ``iat`` 60 s in the past to allow for
   clock drift, ``exp`` 9 minutes ahead — GitHub refuses more than 10 — and ``iss`` = App id).
2. Exchange it for an installation access token (``POST /app/installations/{id}/access_tokens``),
   cached in this process until five minutes before GitHub says it expires.
3. Call the API on the configured host only (``GITHUB_API_URL``), with GitHub's media type and
   API version headers and the portal's timeout.

Tokens and keys are never logged and never stored in the database.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import jwt
import requests
from django.conf import settings

from portal import deadline

logger = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 9 * 60
TOKEN_REFRESH_MARGIN_SECONDS = 5 * 60
USER_AGENT = "deployment-authorization-portal"


class GitHubError(Exception):
    """A call to GitHub failed (network, configuration or an unexpected answer)."""

    def __init__(self, message: str, *, status_code: int | None = None, response: requests.Response | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.response = response


class GitHubNotConfigured(GitHubError):
    """The App id or private key is missing."""


@dataclass
class _CachedToken:
    token: str
    expires_at: float  # monotonic-independent wall clock (time.time())


_token_cache: dict[tuple[str, str, int], _CachedToken] = {}
_token_lock = threading.Lock()


def clear_token_cache() -> None:
    with _token_lock:
        _token_cache.clear()


def api_host() -> str:
    """``scheme://host[:port]`` of the configured GitHub API."""
    parts = urlsplit(settings.GITHUB_API_URL)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_api_url(url: str) -> bool:
    """True when ``url`` points at the configured GitHub API host (same scheme, host and port).

    Callback URLs from payloads are checked with this at intake and again before every call, so
    a forged or unexpected URL can never make the portal send requests elsewhere (no SSRF).
    """
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return False
    if parts.username or parts.password:
        return False
    return f"{parts.scheme}://{parts.netloc}".lower() == api_host() and parts.path.startswith(
        urlsplit(settings.GITHUB_API_URL).path or "/"
    )


def app_jwt(now: float | None = None) -> str:
    """A JWT that authenticates as the App itself (only used to obtain installation tokens)."""
    app_id = settings.GITHUB_APP_ID
    key = settings.GITHUB_APP_PRIVATE_KEY
    if not app_id or not key:
        raise GitHubNotConfigured("GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY must be set to call GitHub.")
    now = int(now if now is not None else time.time())
    payload = {"iat": now - JWT_BACKDATE_SECONDS, "exp": now + JWT_LIFETIME_SECONDS, "iss": str(app_id)}
    try:
        return jwt.encode(payload, key, algorithm="RS256")
    except (ValueError, TypeError) as exc:  # a malformed key: say so without echoing it
        raise GitHubNotConfigured(f"GITHUB_APP_PRIVATE_KEY cannot sign a JWT: {type(exc).__name__}") from None


def _parse_github_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class GitHubClient:
    """Calls GitHub's REST API as one App installation. One ``requests.Session`` per client."""

    def __init__(self, installation_id: int | str, *, session: requests.Session | None = None):
        self.installation_id = int(installation_id)
        self.base_url = settings.GITHUB_API_URL.rstrip("/")
        self.session = session or github_session()

    @property
    def timeout(self) -> float:
        """Per operation, cut to what is left of the caller's total deadline (``portal.deadline``)."""
        return deadline.bounded(settings.PORTAL_HTTP_TIMEOUT)

    # --- authentication ------------------------------------------------------------------
    def _cache_key(self) -> tuple[str, str, int]:
        return (self.base_url, str(settings.GITHUB_APP_ID), self.installation_id)

    def installation_token(self, *, force_refresh: bool = False) -> str:
        """A cached installation access token, refreshed shortly before it expires."""
        key = self._cache_key()
        with _token_lock:
            cached = _token_cache.get(key)
            if cached and not force_refresh and cached.expires_at - TOKEN_REFRESH_MARGIN_SECONDS > time.time():
                return cached.token
        url = f"{self.base_url}/app/installations/{self.installation_id}/access_tokens"
        try:
            response = self.session.post(
                url, headers={"Authorization": f"Bearer {app_jwt()}"}, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise GitHubError(f"Could not reach GitHub for an installation token: {type(exc).__name__}") from None
        if response.status_code != 201:
            raise GitHubError(
                f"GitHub refused an installation token for installation {self.installation_id} "
                f"(HTTP {response.status_code}): {_message(response)}",
                status_code=response.status_code,
                response=response,
            )
        try:
            data = response.json()
            token = data["token"]
            expires_at = _parse_github_time(data["expires_at"])
        except (ValueError, KeyError, TypeError):
            raise GitHubError("GitHub answered the token request with an unexpected body.") from None
        with _token_lock:
            _token_cache[key] = _CachedToken(token=token, expires_at=expires_at)
        return token

    def forget_token(self) -> None:
        with _token_lock:
            _token_cache.pop(self._cache_key(), None)

    # --- requests ------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        url_or_path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        retry_unauthorized: bool = True,
    ) -> requests.Response:
        """One call to the API host. Returns the response whatever its status; raises ``GitHubError``
        only when GitHub could not be reached or the URL is not on the API host."""
        url = url_or_path if url_or_path.startswith(("http://", "https://")) else self.url(url_or_path)
        if not is_api_url(url):
            raise GitHubError(f"Refusing to call {urlsplit(url).netloc!r}: not the configured GitHub API host.")
        token = self.installation_token()
        try:
            response = self.session.request(
                method,
                url,
                json=json,
                params=params,
                timeout=self.timeout,
                allow_redirects=False,
                headers={"Authorization": f"Bearer {token}"},
            )
        except requests.RequestException as exc:
            raise GitHubError(f"Could not reach GitHub: {type(exc).__name__}") from None
        if response.status_code == 401 and retry_unauthorized:
            # A revoked or rotated token: get a fresh one once.
            self.forget_token()
            return self.request(method, url, json=json, params=params, retry_unauthorized=False)
        return response

    def get_json(self, path: str, *, params: dict | None = None) -> Any:
        return self.get_response_and_json(path, params=params)[1]

    def get_response_and_json(self, path: str, *, params: dict | None = None) -> tuple[requests.Response, Any]:
        """GET ``path`` (a path or a full API URL, e.g. a ``Link`` header's next page): the response
        (for its headers) and its JSON body; any answer but 200 with JSON is a ``GitHubError``."""
        response = self.request("GET", path, params=params)
        shown = path.removeprefix(self.base_url)
        if response.status_code != 200:
            raise GitHubError(
                f"GET {shown} answered HTTP {response.status_code}: {_message(response)}",
                status_code=response.status_code,
                response=response,
            )
        try:
            return response, response.json()
        except ValueError:
            raise GitHubError(f"GET {shown} answered with a body that is not JSON.") from None

    # --- the endpoints the portal uses ---------------------------------------------------
    def check_runs(self, repository: str, ref: str, *, max_pages: int = 10) -> list[dict]:
        """All latest check runs for ``ref`` (``GET /repos/{owner}/{repo}/commits/{ref}/check-runs``)."""
        runs: list[dict] = []
        for page in range(1, max_pages + 1):
            data = self.get_json(
                f"repos/{repository}/commits/{quote(ref, safe='')}/check-runs",
                params={"per_page": 100, "page": page, "filter": "latest"},
            )
            batch = data.get("check_runs") or []
            runs.extend(batch)
            if len(batch) < 100 or len(runs) >= int(data.get("total_count") or 0):
                break
        return runs

    def compare(self, repository: str, base: str, head: str) -> dict:
        """``GET /repos/{owner}/{repo}/compare/{base}...{head}``."""
        return self.get_json(f"repos/{repository}/compare/{quote(base, safe='')}...{quote(head, safe='')}")

    def pull_requests_for_commit(self, repository: str, sha: str) -> list[dict]:
        """``GET /repos/{owner}/{repo}/commits/{sha}/pulls``."""
        return self.get_json(f"repos/{repository}/commits/{sha}/pulls", params={"per_page": 100})

    def branches(self, repository: str, *, max_pages: int = 10) -> list[dict]:
        """``GET /repos/{owner}/{repo}/branches``."""
        out: list[dict] = []
        for page in range(1, max_pages + 1):
            batch = self.get_json(f"repos/{repository}/branches", params={"per_page": 100, "page": page})
            out.extend(batch)
            if len(batch) < 100:
                break
        return out

    def branch_protection(self, repository: str, branch: str) -> dict | None:
        """``GET /repos/{owner}/{repo}/branches/{branch}/protection``; None when unprotected (404)."""
        path = f"repos/{repository}/branches/{quote(branch, safe='')}/protection"
        response = self.request("GET", path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise GitHubError(
                f"GET {path} answered HTTP {response.status_code}: {_message(response)}",
                status_code=response.status_code,
                response=response,
            )
        return response.json()

    def put_branch_protection(self, repository: str, branch: str, body: dict) -> dict:
        """``PUT /repos/{owner}/{repo}/branches/{branch}/protection``."""
        path = f"repos/{repository}/branches/{quote(branch, safe='')}/protection"
        response = self.request("PUT", path, json=body)
        if response.status_code != 200:
            raise GitHubError(
                f"PUT {path} answered HTTP {response.status_code}: {_message(response)}",
                status_code=response.status_code,
                response=response,
            )
        return response.json()


def app_installations() -> list[dict]:
    """``GET /app/installations`` as the App (for ``check_github``)."""
    response = _as_app("app/installations")
    if response.status_code != 200:
        raise GitHubError(
            f"GET /app/installations answered HTTP {response.status_code}: {_message(response)}",
            status_code=response.status_code,
        )
    return response.json()


def _message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return (response.text or "")[:200]
    if isinstance(data, dict):
        return str(data.get("message", ""))[:200]
    return ""


def github_session() -> requests.Session:
    """A session with GitHub's media type, API version and the portal's user agent."""
    session = requests.Session()
    session.mount("https://", deadline.adapter())  # connections watched by the caller's deadline
    session.mount("http://", deadline.adapter())
    session.headers.update(
        {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION, "User-Agent": USER_AGENT}
    )
    return session


def _as_app(path: str) -> requests.Response:
    """One call authenticated as the App itself (JWT), on the configured API host, with the timeout."""
    with github_session() as session:
        try:
            return session.get(
                f"{settings.GITHUB_API_URL.rstrip('/')}/{path.lstrip('/')}",
                headers={"Authorization": f"Bearer {app_jwt()}"},
                timeout=deadline.bounded(settings.PORTAL_HTTP_TIMEOUT),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise GitHubError(f"Could not reach GitHub: {type(exc).__name__}") from None


def installation_for_repository(repository: str) -> int:
    """The App's installation id on ``owner/repo`` (``GET /repos/{owner}/{repo}/installation``)."""
    response = _as_app(f"repos/{repository}/installation")
    if response.status_code != 200:
        raise GitHubError(
            f"The GitHub App is not installed on {repository} (HTTP {response.status_code}): {_message(response)}",
            status_code=response.status_code,
        )
    try:
        return int(response.json()["id"])
    except (ValueError, KeyError, TypeError):
        raise GitHubError("GitHub answered the installation lookup with an unexpected body.") from None
