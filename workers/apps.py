from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.utils.module_loading import autodiscover_modules


class WorkersConfig(AppConfig):
    name = "workers"

    def ready(self) -> None:
        """Fills the handler registry the same way in every process (API, scheduler, worker)."""
        import_module("workers.handlers")
        autodiscover_modules("handlers")
        for module in settings.TASKFORGE.handler_modules:
            import_module(module)
