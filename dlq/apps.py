from django.apps import AppConfig


class DlqConfig(AppConfig):
    name = "dlq"
