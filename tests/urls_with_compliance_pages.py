"""The portal's URLs with a stand-in reports page in the ``compliance`` namespace, to test that the
navigation offers a page only once it exists."""

from django.http import HttpResponse
from django.urls import include, path

from compliance.urls import urlpatterns as compliance_urlpatterns
from portal.urls import urlpatterns as portal_urlpatterns

compliance_pages = (
    [*compliance_urlpatterns, path("reports-probe/", lambda request: HttpResponse("reports"), name="reports")],
    "compliance",
)

# The first pattern with a namespace wins, so this one replaces the portal's compliance namespace.
urlpatterns = [path("", include(compliance_pages)), *portal_urlpatterns]
