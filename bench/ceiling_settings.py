"""bench/ceilings.py's API: TaskForge's settings as deployed, with bench/ceiling_urls.py."""

from taskforge_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.ceiling_urls"
