"""Request-wide guards that every page and endpoint gets, whatever the view."""

from __future__ import annotations

import re

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve
from django.views.defaults import page_not_found

# C0 controls (NUL, tab, newline… — none belongs in a filter or search), DEL and the C1 controls.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def control_character_problem(query) -> str | None:
    """A sentence naming the first query parameter that holds a control character, or None."""
    for key, values in query.lists():
        for text in (key, *values):
            match = CONTROL_CHARACTER.search(text)
            if match:
                name = CONTROL_CHARACTER.sub("?", key)[:60] or "(empty name)"
                return (f"The query parameter {name!r} contains a control character "
                        f"(U+{ord(match.group()):04X}), which is not allowed in filters or searches.")
    return None


class RejectControlCharactersMiddleware:
    """Answer 400 naming the parameter when the query string carries a control character.

    Filters and searches go into SQL (PostgreSQL refuses a NUL in a string: a 500 otherwise) and
    into pages; one check here covers the dashboard, the compliance pages, reports, the admin and the
    API (which answers in its own error format).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = control_character_problem(request.GET) if request.META.get("QUERY_STRING") else None
        if problem is None:
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return JsonResponse({"error": {"code": "invalid", "message": problem, "details": {}}}, status=400)
        html = render_to_string("400.html", {"message": problem}, request=request)
        return HttpResponse(html, status=400)


class ProductNotFoundMiddleware:
    """With ``DJANGO_DEBUG=1`` (``make run``, the demo) Django answers an unknown page with its
    debug 404 listing every URL pattern; only staff (the developers) get that. Everyone else sees the
    portal's own 404 page, as in production, so a demo shows what users see. Without DEBUG, Django
    already renders the portal's page and this does nothing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def _debug_for(self, request) -> bool:
        user = getattr(request, "user", None)
        return not settings.DEBUG or bool(user is not None and user.is_authenticated and user.is_staff)

    def __call__(self, request):
        if not self._debug_for(request):
            try:
                resolve(request.path_info, getattr(request, "urlconf", None))
            except Resolver404 as exc:
                return page_not_found(request, exc)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Http404) and not self._debug_for(request):
            return page_not_found(request, exception)
        return None
