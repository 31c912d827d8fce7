"""`manage.py runscheduler`: periodic schedules, promotion, lease expiry, Redis reconciliation, pruning."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from scheduler.runtime import run_scheduler
from taskforge_site import tracing
from taskforge_site.shutdown import call_on_stop_signals


class Command(BaseCommand):
    help = "Run the TaskForge scheduler (several may run at once). SIGTERM/SIGINT stop it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tick-seconds", type=float, help="default: TASKFORGE_SCHEDULER_TICK_SECONDS")

    def handle(self, *args: Any, **options: Any) -> None:
        cfg = settings.TASKFORGE
        if cfg.tracing_enabled:
            tracing.setup_tracing("taskforge-scheduler", exporter=cfg.tracing_exporter)
        stop = threading.Event()
        call_on_stop_signals(stop.set)
        raise SystemExit(
            run_scheduler(
                tick_seconds=options["tick_seconds"] or cfg.scheduler_tick_seconds,
                retention_days=cfg.retention_days,
                stop=stop,
            )
        )
