"""Root urlconf: the API at the root, the ops UI under /admin/."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("jobs.api.urls")),
]

handler400 = "taskforge_site.errors.handler400"
handler403 = "taskforge_site.errors.handler403"
handler404 = "taskforge_site.errors.handler404"
handler500 = "taskforge_site.errors.handler500"
