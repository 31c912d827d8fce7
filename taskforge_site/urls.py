"""Root urlconf: the API at the root, its OpenAPI schema and docs under /api/, the ops UI under /admin/."""

from django.contrib import admin
from django.urls import include, path

from taskforge_site.api_docs import RedocView, SchemaView, SwaggerView
from taskforge_site.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", RedocView.as_view(url_name="schema"), name="redoc"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("jobs.api.urls")),
]

handler400 = "taskforge_site.errors.handler400"
handler403 = "taskforge_site.errors.handler403"
handler404 = "taskforge_site.errors.handler404"
handler500 = "taskforge_site.errors.handler500"
