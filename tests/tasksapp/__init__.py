"""A test-only app whose django.tasks tasks run on TaskForge (installed by tests/settings.py)."""
