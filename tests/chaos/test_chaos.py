"""Nothing is lost: the whole stack under a steady load while every kind of fault hits it.

About 1,800 jobs over 75 s with a fault every 5 s (each kind at least once), then the ledger
checks of tests/chaos/ledger.py. The report is printed (pytest shows it on failure, or with -s).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.faults import FAULTS
from tests.chaos.harness import ChaosConfig, run_chaos

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(420)]


def test_no_job_is_lost_or_corrupted_under_faults(tmp_path: Path) -> None:
    config = ChaosConfig()
    report = run_chaos(config, tmp_path)
    print(report.render())
    assert report.ledger.lost == [], report.render()
    assert report.ok, report.render()
    assert set(report.faults_by_kind) == set(FAULTS)
    assert report.submissions["accepted"] >= 0.8 * config.rate * config.duration_seconds
    assert report.ledger.jobs_by_state["SUCCEEDED"] > report.ledger.jobs_by_state["DLQ"] > 0
    assert report.submissions["idempotent repeats"] > 0
    assert report.submissions["replayed from the DLQ"] > 0
