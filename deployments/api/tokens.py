"""API tokens: created (shown once), checked, revoked. Only a SHA-256 of the secret is stored.

A token reads ``dap_<prefix>_<secret>``: the 12-character prefix is public and finds the row, the
secret has 256 bits of entropy so a fast hash is enough (as for GitHub or Stripe keys).

Two rules keep a token honest:

- **A token acts only as its owner.** A person's token is created by that person (the *My API
  tokens* page); administrators create tokens only for CI service accounts, which never approve.
  ``create_api_token`` refuses anything else (``token_for_other_person``), and ``token_for`` refuses
  to authenticate a person's token created by someone else (rows minted before the rule existed).
- **Scopes fail closed.** A token narrowed to services or environments remembers that it was
  narrowed (``scoped_services`` / ``scoped_environments``); when those objects are deleted and the
  scope rows cascade away, the token matches nothing, never everything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import caches
from django.db import transaction
from django.db.models import F, Value
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.people.identity import SYSTEM_USERNAME
from compliance.people.roles import administers
from deployments.choices import Action, TokenAction
from deployments.gate.services import record_refusal, records_refusals
from deployments.models import ApiToken, Environment, Service

TOKEN_PREFIX = "dap_"
SCOPE_CACHE_SECONDS = 300
# last_used_at is refreshed at most this often, so reads do not write on every call.
LAST_USED_RESOLUTION = timedelta(seconds=60)
MY_TOKENS_HINT = "People create their own tokens on the My API tokens page (/tokens/)."


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _is_system(actor) -> bool:
    """The portal's own account, used by management commands run by an operator on the server."""
    return bool(getattr(actor, "pk", None)) and actor.username == SYSTEM_USERNAME and actor.is_service_account


def issue_refusal(*, actor, user) -> RuleViolation | None:
    """Why ``actor`` may not create a token for ``user``, or ``None`` when they may.

    The owner may always create their own token. A service account's token is created by an
    administrator (or by an operator through ``manage.py create_api_token``). Nobody creates a
    token for another person: it would let them act, and approve, as that person.
    """
    if getattr(actor, "pk", None) is not None and actor.pk == user.pk:
        return None
    if user.is_service_account:
        if user.username == SYSTEM_USERNAME:
            return RuleViolation("token_for_system_account", "The portal's system account never gets an API token.",
                                 status_code=403)
        if administers(actor) or _is_system(actor):
            return None
        return RuleViolation(
            "not_permitted", "Only administrators create API tokens for service accounts.", status_code=403,
            details={"user": user.get_username()},
        )
    return RuleViolation(
        "token_for_other_person",
        f"A token acts as its owner, so only {user.get_username()} may create a token for "
        f"{user.get_username()}; administrators create tokens only for service accounts. {MY_TOKENS_HINT}",
        status_code=403,
        details={"user": user.get_username()},
    )


@records_refusals(Action.CREATE_TOKEN)
@transaction.atomic
def create_api_token(
    *,
    actor,
    user,
    name: str,
    services: Iterable[Service] = (),
    environments: Iterable[Environment] = (),
    actions: Iterable[str] = (),
    expires_at: datetime | None = None,
    ip_address: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user`` and return it with its clear value (shown once, never stored).

    Steps: check who may issue it (the owner, or an administrator for a service account), validate
    the actions, name and expiry, store the hash and record whether the token is narrowed, so an
    emptied scope never widens it. Refusals are recorded (``Refusal``, action ``create_token``).
    """
    refusal = issue_refusal(actor=actor, user=user)
    if refusal is not None:
        raise refusal
    actions = sorted(set(actions))
    unknown = [a for a in actions if a not in TokenAction.values]
    if unknown:
        raise RuleViolation(
            "invalid_token_action",
            f"Unknown token action(s): {', '.join(unknown)}; expected {', '.join(TokenAction.values)}.",
            status_code=400,
        )
    if not name.strip():
        raise RuleViolation("name_required", "A token needs a name saying what it is for.", status_code=400)
    if expires_at is not None and expires_at <= timezone.now():
        raise RuleViolation("invalid_expiry", "A token must expire in the future.", status_code=400)
    services, environments = list(services), list(environments)
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip()[:100],
        prefix=prefix,
        secret_hash=_hash(secret),
        actions=actions,
        scoped_services=bool(services),
        scoped_environments=bool(environments),
        expires_at=expires_at,
        created_by=actor,
    )
    token.services.set(services)
    token.environments.set(environments)
    return token, f"{TOKEN_PREFIX}{prefix}_{secret}"


def revoke_refusal(*, actor, token: ApiToken) -> RuleViolation | None:
    """The owner revokes their own tokens; administrators revoke anyone's (e.g. a leaked one)."""
    if getattr(actor, "pk", None) is not None and actor.pk == token.user_id:
        return None
    if administers(actor) or _is_system(actor):
        return None
    return RuleViolation(
        "token_revoke_not_permitted",
        "Only the token's owner or an administrator may revoke an API token.",
        status_code=403, details={"token": token.prefix},
    )


@transaction.atomic
def _revoke(*, token: ApiToken) -> ApiToken:
    locked = ApiToken.objects.select_for_update(of=("self",)).get(pk=token.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
    return locked


def revoke_api_token(*, actor, token: ApiToken, ip_address: str | None = None) -> ApiToken:
    """Revoke ``token`` now (idempotent). A refusal is recorded and raised (``token_revoke_not_permitted``)."""
    refusal = revoke_refusal(actor=actor, token=token)
    if refusal is not None:
        record_refusal(actor=actor, action=Action.REVOKE_TOKEN, violation=refusal, ip_address=ip_address)
        raise refusal
    return _revoke(token=token)


def parse(raw: str) -> tuple[str, str] | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    prefix, _, secret = raw[len(TOKEN_PREFIX):].partition("_")
    if len(prefix) != 12 or not secret:
        return None
    return prefix, secret


def acts_only_as_owner(token: ApiToken) -> bool:
    """A person's token authenticates only if that person created it; a service account's always.

    Defence in depth for rows created before ``create_api_token`` enforced the rule (the data
    migration 0013 also revoked them): an administrator-made token for a person would let the
    administrator act, and approve, as that person.
    """
    return token.user.is_service_account or (token.created_by_id is not None and token.created_by_id == token.user_id)


def token_for(raw: str, *, now: datetime | None = None) -> ApiToken | None:
    """The usable token ``raw`` stands for (constant-time comparison), or ``None``."""
    parsed = parse(raw)
    if parsed is None:
        return None
    prefix, secret = parsed
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(secret)):
        return None
    now = now or timezone.now()
    if not token.is_usable(now) or not token.user.is_active or not acts_only_as_owner(token):
        return None
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        # A plain UPDATE: usage is not a configuration change worth an audit entry.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


class _ScopeCache:
    """The default cache (per process unless CACHES says otherwise), looked up lazily."""

    def get(self, key):
        return caches["default"].get(key)

    def set(self, key, value, timeout):
        caches["default"].set(key, value, timeout)


scope_cache = _ScopeCache()


@dataclass(frozen=True)
class TokenScope:
    """What a token is narrowed to. ``None``: not narrowed that way; an empty set: narrowed to nothing."""

    service_ids: frozenset[int] | None = None
    environment_ids: frozenset[int] | None = None

    @property
    def is_narrowed(self) -> bool:
        return self.service_ids is not None or self.environment_ids is not None

    def allows(self, environment: Environment) -> bool:
        if self.service_ids is not None and environment.service_id not in self.service_ids:
            return False
        return self.environment_ids is None or environment.pk in self.environment_ids


UNSCOPED = TokenScope()


def _scope_ids(token: ApiToken) -> tuple[list[int], list[int]]:
    """(service ids, environment ids) of the token's scope rows: from the cache, or one query."""
    cached = getattr(token, "_scope_ids", None)
    if cached is not None:
        return cached
    # A token's scope never grows after creation (revoke and create another), so each process keeps
    # its ids for a few minutes: polling CI calls then skip this query. Whether the token is narrowed
    # is read from the token row at every call (``scoped_*``), never from the cache, and so are
    # revocation and expiry. A deleted object's id left in the cache matches nothing (ids are not
    # reused), so the cache can only be narrower than the database, never wider.
    key = f"api-token-scope:v2:{token.pk}:{token.prefix}"
    cached = scope_cache.get(key)
    if cached is None:
        services = ApiToken.services.through.objects.filter(apitoken_id=token.pk).annotate(
            kind=Value("s"), object_id=F("service_id")).values_list("kind", "object_id")
        environments = ApiToken.environments.through.objects.filter(apitoken_id=token.pk).annotate(
            kind=Value("e"), object_id=F("environment_id")).values_list("kind", "object_id")
        rows = list(services.union(environments, all=True))
        cached = (sorted(pk for kind, pk in rows if kind == "s"), sorted(pk for kind, pk in rows if kind == "e"))
        scope_cache.set(key, cached, SCOPE_CACHE_SECONDS)
    token._scope_ids = (list(cached[0]), list(cached[1]))
    return token._scope_ids


def token_scope(token: ApiToken | None) -> TokenScope:
    """The services and environments ``token`` is narrowed to (fail closed: see the module docstring)."""
    if token is None:
        return UNSCOPED
    service_ids, environment_ids = _scope_ids(token)
    # Rows without the flag cannot come from create_api_token, but narrow by them anyway.
    return TokenScope(
        service_ids=frozenset(service_ids) if token.scoped_services or service_ids else None,
        environment_ids=frozenset(environment_ids) if token.scoped_environments or environment_ids else None,
    )


def token_allows_action(token: ApiToken | None, action: str) -> bool:
    return token is None or not token.actions or action in token.actions


def refuse_token_action(*, token: ApiToken, action: str, actor, ip_address: str | None = None) -> RuleViolation:
    """Record and return the refusal of a call that needs ``action`` the token does not allow."""
    violation = RuleViolation(
        "token_scope",
        f"This API token does not allow “{TokenAction(action).label.lower()}” (its actions: "
        f"{', '.join(token.actions)}); create a token with the “{action}” action.",
        status_code=403,
        details={"needed_action": str(action), "token_actions": list(token.actions), "token": token.prefix},
    )
    record_refusal(actor=actor, action=Action.USE_TOKEN, violation=violation, ip_address=ip_address)
    return violation


def token_allows_environment(token: ApiToken | None, environment: Environment) -> bool:
    return token is None or token_scope(token).allows(environment)


def narrow_environments(token: ApiToken | None, queryset):
    """Restrict an Environment queryset to the token's scope (an emptied scope leaves nothing)."""
    scope = token_scope(token)
    if scope.service_ids is not None:
        queryset = queryset.filter(service_id__in=scope.service_ids)
    if scope.environment_ids is not None:
        queryset = queryset.filter(pk__in=scope.environment_ids)
    return queryset
