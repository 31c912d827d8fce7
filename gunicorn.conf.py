"""gunicorn settings: `gunicorn taskforge_site.wsgi` binds HTTP_ADDR with gthread workers.

Configuration is validated here, before gunicorn forks, so a bad variable stops the start
with every problem listed.
"""

import os

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
graceful_timeout = 30
# gunicorn 27's control socket lives at one per-user path; two servers on a host would collide.
control_socket_disable = True
