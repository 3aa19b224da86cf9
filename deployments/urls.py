from django.urls import path

from deployments.web import access as access_views
from deployments.web import requests as request_views
from deployments.web import tokens as token_views
from deployments.web import views

app_name = "deployments"
urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("my-requests/", views.my_requests, name="my_requests"),
    path("decisions/", views.decisions, name="decisions"),
    path("requests/new/", request_views.new_request, name="new_request"),
    path("requests/<int:pk>/", views.request_detail, name="request_detail"),
    path("requests/<int:pk>/cancel/", request_views.cancel, name="cancel_request"),
    path("requests/<int:pk>/decide/", views.decide, name="decide"),
    path("access/", access_views.access, name="access"),
    path("tokens/", token_views.my_tokens, name="my_tokens"),
    path("tokens/new/", token_views.create_token, name="create_token"),
    path("tokens/<int:pk>/revoke/", token_views.revoke_token, name="revoke_token"),
]
