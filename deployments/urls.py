from django.urls import path

from . import views

app_name = "deployments"
urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("my-requests/", views.my_requests, name="my_requests"),
    path("decisions/", views.decisions, name="decisions"),
    path("requests/<int:pk>/", views.request_detail, name="request_detail"),
    path("requests/<int:pk>/decide/", views.decide, name="decide"),
]
