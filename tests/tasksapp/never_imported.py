"""A module of an installed app that nothing imports: job data must not be able to import it."""

from django.tasks import task


@task
def hidden() -> None:
    """Would be a valid task, if anything imported this module."""
