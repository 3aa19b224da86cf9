"""API tokens: created (shown once), checked, revoked. Only a SHA-256 of the secret is stored.

A token reads ``dap_<prefix>_<secret>``: the 12-character prefix is public and finds the row, the
secret has 256 bits of entropy so a fast hash is enough (as for GitHub or Stripe keys).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.cache import caches
from django.db import transaction
from django.db.models import F, Value
from django.utils import timezone

from compliance.errors import RuleViolation

from .choices import TokenAction
from .models import ApiToken, Environment, Service

TOKEN_PREFIX = "dap_"
SCOPE_CACHE_SECONDS = 300
# last_used_at is refreshed at most this often, so reads do not write on every call.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


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
) -> tuple[ApiToken, str]:
    """Create a token for ``user`` and return it with its clear value (shown once, never stored)."""
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
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip()[:100],
        prefix=prefix,
        secret_hash=_hash(secret),
        actions=actions,
        expires_at=expires_at,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    token.services.set(list(services))
    token.environments.set(list(environments))
    return token, f"{TOKEN_PREFIX}{prefix}_{secret}"


@transaction.atomic
def revoke_api_token(*, actor, token: ApiToken) -> ApiToken:
    locked = ApiToken.objects.select_for_update(of=("self",)).get(pk=token.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
    return locked


def parse(raw: str) -> tuple[str, str] | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    prefix, _, secret = raw[len(TOKEN_PREFIX):].partition("_")
    if len(prefix) != 12 or not secret:
        return None
    return prefix, secret


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
    if not token.is_usable(now) or not token.user.is_active:
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


def token_scope(token: ApiToken) -> tuple[set[int], set[int]]:
    """(service ids, environment ids) the token is narrowed to; empty sets mean no narrowing."""
    cache = getattr(token, "_scope_cache", None)
    # A token's scope never changes after creation (revoke and create another), so each process
    # keeps it for a few minutes: polling CI calls then skip this query. Revocation and expiry are
    # checked on the token row at every call, never cached.
    key = f"api-token-scope:{token.pk}:{token.prefix}"
    if cache is None:
        cached = scope_cache.get(key)
        if cached is not None:
            cache = (set(cached[0]), set(cached[1]))
            token._scope_cache = cache
    if cache is None:
        # One query for both lists.
        services = ApiToken.services.through.objects.filter(apitoken_id=token.pk).annotate(
            kind=Value("s"), object_id=F("service_id")).values_list("kind", "object_id")
        environments = ApiToken.environments.through.objects.filter(apitoken_id=token.pk).annotate(
            kind=Value("e"), object_id=F("environment_id")).values_list("kind", "object_id")
        rows = list(services.union(environments, all=True))
        cache = ({pk for kind, pk in rows if kind == "s"}, {pk for kind, pk in rows if kind == "e"})
        token._scope_cache = cache
        scope_cache.set(key, (sorted(cache[0]), sorted(cache[1])), SCOPE_CACHE_SECONDS)
    return cache


def token_allows_action(token: ApiToken | None, action: str) -> bool:
    return token is None or not token.actions or action in token.actions


def token_allows_environment(token: ApiToken | None, environment: Environment) -> bool:
    if token is None:
        return True
    service_ids, environment_ids = token_scope(token)
    if service_ids and environment.service_id not in service_ids:
        return False
    return not (environment_ids and environment.pk not in environment_ids)


def narrow_environments(token: ApiToken | None, queryset):
    """Restrict an Environment queryset to the token's scope."""
    if token is None:
        return queryset
    service_ids, environment_ids = token_scope(token)
    if not service_ids and not environment_ids:
        return queryset
    if service_ids:
        queryset = queryset.filter(service_id__in=service_ids)
    if environment_ids:
        queryset = queryset.filter(pk__in=environment_ids)
    return queryset
