"""`manage.py runworker`: claim and run jobs until SIGTERM/SIGINT (or, with --burst, until idle)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from taskforge_site import tracing
from taskforge_site.env import QUEUE_NAME_RE
from taskforge_site.shutdown import call_on_stop_signals
from workers.runtime import Worker, WorkerOptions


class Command(BaseCommand):
    help = "Run a TaskForge worker. SIGTERM/SIGINT drain gracefully; a second one releases at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queues", help="comma-separated queues, in order of preference (default: all)")
        parser.add_argument("--concurrency", type=int, help="execution slots (default: WORKER_CONCURRENCY)")
        parser.add_argument(
            "--prefetch", type=int, help="jobs claimed ahead of free slots (default: as many as slots)"
        )
        parser.add_argument(
            "--pool",
            choices=["threads", "processes"],
            default="threads",
            help="processes: run handlers in child processes that a timeout can kill",
        )
        parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")

    def handle(self, *args: Any, **options: Any) -> None:
        cfg = settings.TASKFORGE
        queues = [q.strip() for q in (options["queues"] or "").split(",") if q.strip()] or None
        bad = [q for q in queues or [] if not QUEUE_NAME_RE.match(q)]
        if bad:
            raise CommandError(f"--queues: invalid queue name(s) {', '.join(map(repr, bad))}")
        concurrency = cfg.worker_concurrency if options["concurrency"] is None else options["concurrency"]
        if not 1 <= concurrency <= 1000:
            raise CommandError("--concurrency must be from 1 to 1000")
        prefetch = options["prefetch"]
        if prefetch is not None and not 0 <= prefetch <= 10_000:
            raise CommandError("--prefetch must be from 0 to 10000")
        worker = Worker(
            WorkerOptions(
                queues=queues,
                concurrency=concurrency,
                prefetch=prefetch,
                burst=options["burst"],
                lease_seconds=cfg.lease_seconds,
                shutdown_grace_seconds=cfg.shutdown_grace_seconds,
                default_rate_per_sec=cfg.rate_limit_per_sec,
                pool=options["pool"],
            )
        )
        if cfg.tracing_enabled:
            tracing.setup_tracing("taskforge-worker", exporter=cfg.tracing_exporter)
        call_on_stop_signals(worker.request_stop)
        raise SystemExit(worker.run())
