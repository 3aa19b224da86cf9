"""allauth pages the portal does not offer.

Setting a first password (someone who signs in by single sign-on) and resetting one by e-mail would each
give a person a local password the identity provider knows nothing about: they would keep signing in
after being deactivated there. Local passwords are set by administrators and changed by their owners.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect


def password_not_offered(request, *args, **kwargs):
    messages.error(
        request,
        "Passwords are not set or reset here: people who sign in by single sign-on have none, and an "
        "administrator sets a local account's first password.",
    )
    return redirect("home" if request.user.is_authenticated else "login")
