from django.urls import path

from deployments.evidence import views as evidence_views
from deployments.metrics import views as metrics_views
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
    path("requests/<int:pk>/story/", evidence_views.story, name="change_story"),
    path("requests/<int:pk>/story.<str:fmt>", evidence_views.story, name="change_story_export"),
    path("requests/<int:pk>/emergency-review/", evidence_views.emergency_review, name="emergency_review"),
    path("requests/<int:pk>/failed-change/", evidence_views.failed_change, name="failed_change"),
    path("evidence/changes/", evidence_views.changes, name="changes"),
    path("evidence/samples/", evidence_views.samples, name="samples"),
    path("evidence/samples/<int:pk>/", evidence_views.sample_detail, name="sample_detail"),
    path("evidence/samples/<int:pk>/bundle.zip", evidence_views.sample_bundle, name="sample_bundle"),
    path("evidence/emergency-reviews/", evidence_views.emergency_reviews, name="emergency_reviews"),
    path("metrics/", metrics_views.metrics, name="metrics"),
    path("access/", access_views.access, name="access"),
    path("tokens/", token_views.my_tokens, name="my_tokens"),
    path("tokens/new/", token_views.create_token, name="create_token"),
    path("tokens/<int:pk>/revoke/", token_views.revoke_token, name="revoke_token"),
]
