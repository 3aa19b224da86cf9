"""The outbound URL policy: where the portal may send HTTP requests that people configured.

Every URL an administrator types in (CI webhook endpoints, chat channels, any later integration)
is a way to make the portal's servers call somewhere. Without a policy that is server-side request
forgery: a webhook pointed at ``http://169.254.169.254/`` or at an internal admin interface turns
the portal into a proxy into its own network. The rules:

1. **At save** — ``url_problem(url)`` / ``validate_outbound_url`` (a Django validator): the URL is
   absolute, ``https://`` (plain ``http://`` only when ``DEBUG`` is on or the host is allow-listed),
   carries no user-info, and its host — an IP literal, or every address the name resolves to now —
   is a public address. Refused: loopback, private, link-local, cloud metadata, multicast,
   reserved, unspecified and other non-global addresses, IPv4-mapped IPv6 forms included.
2. **At connect** — ``session()`` returns a ``requests`` session whose connections resolve the host,
   check every address again and connect to the checked address (resolve and pin; DNS rebinding
   between save and send gains nothing), then confirm the peer with ``getpeername()``. Environment
   proxies are ignored (a proxy would resolve the name itself, outside this check) and redirects are
   the caller's to refuse. Libraries that make their own ``requests`` calls (apprise, for chat) run
   inside ``guard()``, which applies the same check to every connection opened in that context.
3. **Allow-list** — ``PORTAL_OUTBOUND_ALLOWED_HOSTS``: host names (``ci.internal``, or
   ``.internal`` for a domain and its subdomains) and IP networks (``10.20.0.0/16``, ``127.0.0.1``)
   that may be reached although they are not public, over http or https.

A refused destination raises ``OutboundRefused`` whose message names the reason without the URL's
path or query (those may be secrets): "destination refused by outbound policy: api.example resolves
to a loopback address".
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import connection as urllib3_connection

from portal import deadline

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services (AWS, GCP, Azure, OpenStack; AWS IPv6; Alibaba; Oracle).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
# Names that mean "this machine" or "the metadata service" whatever DNS says at save time.
REFUSED_NAMES = {
    "localhost": "a loopback address",
    "metadata": "a cloud metadata address",
    "metadata.google.internal": "a cloud metadata address",
    "instance-data": "a cloud metadata address",
}


class OutboundRefused(Exception):  # noqa: N818 - reads as "the outbound call was refused"
    """The outbound policy refused a destination. Not an ``OSError`` on purpose: urllib3 and requests
    must not wrap it into a generic connection error, so the caller sees the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"destination refused by outbound policy: {reason}")
        self.reason = reason


# --- addresses and the allow-list -----------------------------------------------------------


@dataclass(frozen=True)
class AllowList:
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default_factory=tuple)

    def allows_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.names or any(host.endswith(s) or host == s[1:] for s in self.suffixes)

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def parse_allow_list(entries) -> AllowList:
    """``["ci.internal", ".corp.example", "10.0.0.0/8", "::1"]`` → an ``AllowList``; ``ValueError``
    naming a bad entry (settings turn it into ``ImproperlyConfigured``)."""
    names, suffixes, networks = set(), [], []
    for raw in entries or ():
        entry = str(raw).strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        label = entry.lstrip(".")
        if not label or any(c in label for c in "/:@ *") or len(label) > 253:
            raise ValueError(f"{raw!r} is neither a host name, a .domain suffix nor an IP network")
        if entry.startswith("."):
            suffixes.append("." + label)
        else:
            names.add(label)
    return AllowList(frozenset(names), tuple(suffixes), tuple(networks))


def allow_list() -> AllowList:
    return parse_allow_list(settings.PORTAL_OUTBOUND_ALLOWED_HOSTS)


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:  # 2002::/16 embeds an IPv4 address
            return address.sixtofour
    return address


def address_problem(address: IPAddress | str) -> str | None:
    """Why ``address`` may not be reached ("a loopback address", …), or None for a public address."""
    ip = _unmapped(ipaddress.ip_address(address) if isinstance(address, str) else address)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "a non-public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _as_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def resolve(host: str, port: int) -> list[tuple[int, int, int, tuple]]:
    """``getaddrinfo`` for a TCP connection (``socket.gaierror`` when the name does not resolve)."""
    family = urllib3_connection.allowed_gai_family()
    return socket.getaddrinfo(host.strip("[]"), port, family, socket.SOCK_STREAM)


def destination_problem(host: str, addresses, allowed: AllowList) -> str | None:
    """The reason to refuse ``host`` reached at ``addresses`` (every one must pass), or None."""
    if allowed.allows_name(host):
        return None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
        if allowed.allows_address(ip) or allowed.allows_address(_unmapped(ip)):
            continue
        problem = address_problem(ip)
        if problem:
            return f"{host} is {problem}" if _as_address(host) else f"{host} resolves to {problem}"
    return None


# --- save time --------------------------------------------------------------------------------


def scheme_problem(url: str) -> str | None:
    """Why ``url``'s scheme may not be used now (https in production), or None; the addresses are
    the connect-time check's business."""
    parts = urlsplit(url or "")
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        allowed = allow_list()
        literal = _as_address(host)
        if settings.DEBUG or allowed.allows_name(host) or (literal is not None and allowed.allows_address(literal)):
            return None
        return f"plain http to {host} (https is required unless the host is allow-listed)"
    return f"the {parts.scheme or 'missing'} scheme is not allowed"


def url_problem(url: str, *, resolve_names: bool = True) -> str | None:
    """A sentence saying why ``url`` may not be configured as an outbound destination, or None.

    Names that do not resolve now are accepted (the connect-time check applies when it is used).
    """
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        return "The URL is not valid."
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        return "The URL must be an absolute https:// URL."
    if parts.username is not None or parts.password is not None:
        return "The URL must not contain a user name or password; use the signing secret instead."
    allowed = allow_list()
    literal = _as_address(host)
    host_allowed = allowed.allows_name(host) or (literal is not None and allowed.allows_address(_unmapped(literal)))
    if parts.scheme == "http" and not (settings.DEBUG or host_allowed):
        return "The URL must use https:// (plain http:// only for hosts in PORTAL_OUTBOUND_ALLOWED_HOSTS)."
    if host_allowed:
        return None
    name_reason = REFUSED_NAMES.get(host) or ("a loopback address" if host.endswith(".localhost") else None)
    if name_reason:
        logger.warning("outbound URL refused: %s is %s", host, name_reason)
        return f"Destination refused by outbound policy: {host} is {name_reason}."
    if literal is not None:
        problem = destination_problem(host, [literal], allowed)
    elif resolve_names:
        try:
            infos = resolve(host, port or (443 if parts.scheme == "https" else 80))
        except (socket.gaierror, UnicodeError):
            return None
        problem = destination_problem(host, [info[4][0] for info in infos], allowed)
    else:
        problem = None
    if problem:
        logger.warning("outbound URL refused: %s", problem)  # the host only: a URL's path may be a secret
        return (f"Destination refused by outbound policy: {problem}. Only public addresses may be reached "
                f"unless the host is listed in PORTAL_OUTBOUND_ALLOWED_HOSTS.")
    return None


def validate_outbound_url(value: str) -> None:
    """Django validator form of ``url_problem`` (model and form fields)."""
    problem = url_problem(value)
    if problem:
        raise ValidationError(problem, code="outbound_refused")


# --- connect time -----------------------------------------------------------------------------


def _set_options(sock: socket.socket, options) -> None:
    for option in options or ():
        sock.setsockopt(*option)


def open_checked_socket(host: str, port: int, timeout=None, source_address=None, socket_options=None) -> socket.socket:
    """Resolve ``host``, refuse unless every address passes the policy, connect to a checked address.

    The socket is connected to the IP that was checked (never re-resolved), and the peer address is
    confirmed before the caller may send a byte.
    """
    allowed = allow_list()
    infos = resolve(host, port)
    problem = destination_problem(host, [info[4][0] for info in infos], allowed)
    if problem:
        logger.warning("outbound connection refused before connecting: %s", problem)
        raise OutboundRefused(problem)
    error: OSError | None = None
    for family, socktype, proto, _canon, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            _set_options(sock, socket_options)
            if timeout is not urllib3_connection._DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            peer = sock.getpeername()[0]
            if peer != sockaddr[0] or destination_problem(host, [peer], allowed):
                sock.close()
                raise OutboundRefused(f"{host} connected to an unexpected address")
            deadline.watch(sock)  # the call's total deadline (portal.deadline) may cut it off
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error or OSError(f"no address for {host}")


class _CheckedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        # Same contract as urllib3's own _new_conn, with the policy in front of the connect.
        from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

        try:
            return open_checked_socket(
                self._dns_host, self.port, self.timeout, self.source_address, self.socket_options
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass


class CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


class CheckedAdapter(HTTPAdapter):
    """A requests transport adapter whose every connection passes ``open_checked_socket``."""

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = PoolManager(num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": CheckedHTTPConnectionPool,
                                                   "https": CheckedHTTPSConnectionPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise OutboundRefused("outbound requests to configured URLs do not go through a proxy")


class CheckedSession(requests.Session):
    """A session for configured URLs: scheme re-checked before each send, addresses at connect."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # no environment proxies or .netrc credentials
        adapter = CheckedAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def send(self, request, **kwargs):
        problem = scheme_problem(request.url)
        if problem:
            raise OutboundRefused(problem)
        return super().send(request, **kwargs)


def session() -> CheckedSession:
    return CheckedSession()


# --- guarding libraries that make their own requests calls (apprise) ---------------------------

_guard_state: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("portal_outbound_guard", default=None)
_original_create_connection = urllib3_connection.create_connection


def _guarded_create_connection(address, timeout=urllib3_connection._DEFAULT_TIMEOUT, source_address=None,
                               socket_options=None):
    refusals = _guard_state.get()
    if refusals is None:  # outside guard(): urllib3's own behaviour, untouched
        return _original_create_connection(address, timeout, source_address, socket_options)
    host, port = address
    try:
        return open_checked_socket(host, port, timeout, source_address, socket_options)
    except OutboundRefused as exc:
        refusals.append(exc.reason)
        raise


@contextlib.contextmanager
def guard() -> Iterator[list[str]]:
    """Apply the connect-time check to every urllib3 connection opened in this context (threads
    started with a copy of the context included); yields the list of refusal reasons.

    urllib3 connections call ``urllib3.util.connection.create_connection``; it is replaced once,
    process-wide, by a function that behaves exactly like the original outside ``guard()``.
    """
    if urllib3_connection.create_connection is not _guarded_create_connection:
        urllib3_connection.create_connection = _guarded_create_connection
    refusals: list[str] = []
    token = _guard_state.set(refusals)
    try:
        yield refusals
    finally:
        _guard_state.reset(token)


# --- what a failed call leaves behind ------------------------------------------------------------


def describe_failure(exc: BaseException, *, timeout: float | None = None) -> str:
    """A short reason for a failed outbound call, never the URL nor anything the receiver sent."""
    if isinstance(exc, OutboundRefused):
        return str(exc)
    cause = exc
    while cause is not None:  # requests wraps urllib3 which wraps the policy's refusal
        if isinstance(cause, OutboundRefused):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ReadTimeout | requests.Timeout):
        return f"timeout after {timeout:g} s" if timeout else "timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake or certificate verification failed"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "Name or service not known" in text or "NameResolutionError" in text or "getaddrinfo" in text:
            return "the host name does not resolve"
        if "refused" in text.lower():
            return "connection refused"
        return "connection failed"
    if isinstance(exc, requests.exceptions.TooManyRedirects | requests.exceptions.InvalidURL):
        return "invalid URL or redirect"
    return f"request failed ({type(exc).__name__})"


def describe_status(code: int) -> str:
    """``HTTP 500 Internal Server Error`` from the status code alone (the receiver's reason phrase and
    body are not kept: they are the receiver's words, possibly secrets or markup)."""
    from http import HTTPStatus

    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"
