from django.urls import path
from rest_framework.routers import SimpleRouter

from jobs.api.views import HealthView, JobViewSet, QueueViewSet, ReadyView


class OptionalSlashRouter(SimpleRouter):
    """`/jobs` and `/jobs/` both work (the contract writes paths without a slash)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("jobs", JobViewSet, basename="jobs")
router.register("queues", QueueViewSet, basename="queues")

urlpatterns = [
    path("healthz", HealthView.as_view(), name="healthz"),
    path("readyz", ReadyView.as_view(), name="readyz"),
    *router.urls,
]
