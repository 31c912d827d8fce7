from django.urls import path
from rest_framework.routers import SimpleRouter

from dlq.api.views import DeadLetterViewSet
from jobs.api.views import HealthView, JobViewSet, QueueViewSet, ReadyView, StatsView
from scheduler.api.views import ScheduleViewSet


class OptionalSlashRouter(SimpleRouter):
    """`/jobs` and `/jobs/` both work (the contract writes paths without a slash)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("jobs", JobViewSet, basename="jobs")
router.register("queues", QueueViewSet, basename="queues")
router.register("dlq", DeadLetterViewSet, basename="dlq")
router.register("schedules", ScheduleViewSet, basename="schedules")

urlpatterns = [
    path("healthz", HealthView.as_view(), name="healthz"),
    path("readyz", ReadyView.as_view(), name="readyz"),
    path("stats", StatsView.as_view(), name="stats"),
    *router.urls,
]
