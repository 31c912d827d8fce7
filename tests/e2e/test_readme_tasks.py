"""The README's "Using TaskForge with django.tasks" example, run as written: its settings module
and app on disk, a real worker started with those settings, and its usage code executed here."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.tasks import TaskResultStatus

from jobs.models import Job
from tests.conftest import wait_for
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

SECTION = "## Using TaskForge with django.tasks"


def readme_examples() -> dict[str, str]:
    """The section's Python blocks, by their first line (``# shop/tasks.py``)."""
    section = (ROOT / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return {block.splitlines()[0]: block for block in blocks}


@pytest.fixture
def example_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Writes mysite/ and shop/ from the README and puts them on the path; returns the blocks."""
    blocks = readme_examples()
    for path in ("mysite/settings.py", "shop/tasks.py"):
        target = tmp_path / path
        target.parent.mkdir(exist_ok=True)
        (target.parent / "__init__.py").touch()
        target.write_text(blocks[f"# {path}"])
    monkeypatch.syspath_prepend(str(tmp_path))
    yield blocks
    for name in ("mysite.settings", "mysite", "shop.tasks", "shop"):
        sys.modules.pop(name, None)


def test_readme_example_runs(spawn, example_project, settings, tmp_path) -> None:
    mysite = importlib.import_module("mysite.settings")
    settings.INSTALLED_APPS = mysite.INSTALLED_APPS
    settings.TASKS = mysite.TASKS
    spawn("runworker", env={"DJANGO_SETTINGS_MODULE": "mysite.settings", "PYTHONPATH": str(tmp_path)})

    usage = next(block for first, block in example_project.items() if first.startswith("# your code"))
    names: dict = {}
    exec(compile(usage, "README.md", "exec"), names)  # the README's own code, verbatim

    receipt, charge = names["receipt"], names["charge"]
    send_receipt, charge_card = names["send_receipt"], names["charge_card"]

    def successful(task, result_id: str):
        result = task.get_result(result_id)
        return result if result.status == TaskResultStatus.SUCCESSFUL else None

    sent = wait_for(lambda: successful(send_receipt, receipt.id), timeout=60, what="send_receipt")
    assert sent.return_value == {"order": 42, "sentTo": "ada@example.com"}
    charged = wait_for(lambda: successful(charge_card, charge.id), timeout=60, what="charge_card")
    assert charged.return_value == {"paymentRef": f"order-42-{charge.id}", "attempt": 1}

    # The settings' OPTIONS and the decorator's policy reached the jobs.
    jobs = {job.job_type: job for job in Job.objects.all()}
    receipt_job, charge_job = jobs["shop.tasks.send_receipt"], jobs["shop.tasks.charge_card"]
    assert (receipt_job.queue, receipt_job.priority) == ("emails", 10)
    assert (receipt_job.max_attempts, receipt_job.initial_delay_ms) == (6, 200)
    assert (charge_job.queue, charge_job.max_attempts, charge_job.backoff) == ("default", 8, 3.0)
