"""The portal's URLs plus stand-ins for the training and reports pages, to test optional navigation."""

from django.http import HttpResponse
from django.urls import include, path

from portal.urls import urlpatterns as portal_urlpatterns

compliance_pages = (
    [
        path("training-probe/", lambda request: HttpResponse("training"), name="my_training"),
        path("reports-probe/", lambda request: HttpResponse("reports"), name="reports"),
    ],
    "compliance",
)

urlpatterns = [path("", include(compliance_pages)), *portal_urlpatterns]
