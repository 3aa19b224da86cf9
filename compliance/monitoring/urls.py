from django.urls import path

from . import views

app_name = "monitoring"

urlpatterns = [
    path("", views.index, name="index"),
    path("violations/", views.violation_list, name="violation_list"),
    path("violations/<int:pk>/", views.violation_detail, name="violation_detail"),
    path("audit-reviews/", views.audit_reviews, name="audit_reviews"),
]
