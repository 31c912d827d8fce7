"""gunicorn settings: `gunicorn taskforge_site.wsgi` binds HTTP_ADDR with gthread workers.

Configuration is validated here, before gunicorn forks, so a bad variable stops the start
with every problem listed.
"""

import os
import shutil

from prometheus_client import multiprocess

from taskforge_site import tracing
from taskforge_site.env import ConfigError, load_config

try:
    _cfg = load_config(os.environ)
except ConfigError as exc:
    raise SystemExit(f"taskforge: {exc}") from None

_host = f"[{_cfg.http_host}]" if ":" in _cfg.http_host else _cfg.http_host
bind = f"{_host}:{_cfg.http_port}"
wsgi_app = "taskforge_site.wsgi:application"
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
accesslog = None  # taskforge_site.middleware writes one JSON access line per request
# gunicorn's own lines (start, worker boots and exits) are JSON on stderr like every other log
# line; stdout is left to the tracing exporter.
_json_stderr = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
logconfig_dict = {
    "formatters": {"json": {"()": "taskforge_site.logging.JsonFormatter"}},
    "handlers": {"console": _json_stderr, "error_console": _json_stderr},
    "loggers": {
        "gunicorn.error": {
            "level": _cfg.log_level.upper().replace("WARN", "WARNING"),
            "handlers": ["error_console"],
            "propagate": False,
        }
    },
}
graceful_timeout = 30
# gunicorn 27's control socket lives at one per-user path; two servers on a host would collide.
control_socket_disable = True

# prometheus_client's multiprocess mode (set PROMETHEUS_MULTIPROC_DIR before starting gunicorn):
# every worker writes its request metrics to files there and /metrics sums them per host.
_multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def on_starting(server: object) -> None:
    """Starts from an empty metrics directory: files of an earlier run would be summed in."""
    if _multiproc_dir:
        shutil.rmtree(_multiproc_dir, ignore_errors=True)
        os.makedirs(_multiproc_dir, exist_ok=True)


def post_fork(server: object, worker: object) -> None:
    """Each worker builds its own tracer provider: the span exporter's thread does not survive a fork."""
    if _cfg.tracing_enabled:
        tracing.setup_tracing("taskforge-api", exporter=_cfg.tracing_exporter)


def child_exit(server: object, worker: object) -> None:
    """Drops a dead worker's live gauges from the multiprocess files."""
    if _multiproc_dir:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
