"""The ops UI in headless Chromium against a live server: log in, watch the dashboard update,
replay a dead letter with a click, and see a <script> job type rendered as text.

Screenshots go to test-artifacts/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from dlq.services import dead_letter_jobs
from jobs.models import Job
from jobs.roles import grant_role
from jobs.services import enqueue_job
from jobs.states import JobState

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
XSS = "<script>document.title='pwned'</script>"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    yield driver
    driver.quit()


def wait(driver: WebDriver, condition, timeout: float = 30) -> object:
    return WebDriverWait(driver, timeout).until(condition)


def log_in(driver: WebDriver, base: str) -> None:
    user = get_user_model().objects.create_user("oncall", password="pw-oncall-1", is_staff=True)
    grant_role(user, "operator")
    driver.get(f"{base}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("oncall")
    driver.find_element(By.NAME, "password").send_keys("pw-oncall-1")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait(driver, lambda d: "Site administration" in d.page_source)


def depth(driver: WebDriver, queue: str) -> str:
    cells = driver.find_elements(By.CSS_SELECTOR, f'tr[data-queue="{queue}"] .tf-depth')
    return cells[0].text if cells else ""


def test_operator_dashboard_dlq_replay_and_escaping(
    live_server, transactional_db, browser: WebDriver
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    base = live_server.url
    log_in(browser, base)

    enqueue_job("tests.record", {"n": 1}, queue="ui")
    browser.find_element(By.LINK_TEXT, "Dashboard").click()
    wait(browser, lambda d: depth(d, "ui") == "1")
    for n in range(2, 4):
        enqueue_job("tests.record", {"n": n}, queue="ui")
    wait(browser, lambda d: depth(d, "ui") == "3")  # swapped in by the page's script, no reload
    assert browser.find_element(By.CSS_SELECTOR, "svg.tf-chart")
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))

    victim = enqueue_job("tests.record", {"html": XSS}, queue="ui").job
    dead_letter_jobs(ids=[victim.id], actor="test", reason="poison")
    Job.objects.filter(id=victim.id).update(job_type=XSS)  # as a hostile submitter could name it
    browser.get(f"{base}/admin/jobs/job/")
    wait(browser, lambda d: XSS in d.find_element(By.ID, "result_list").text)
    assert browser.title != "pwned"
    browser.save_screenshot(str(ARTIFACTS / "job-list.png"))

    browser.get(f"{base}/admin/dlq/deadletter/{victim.id}/change/")
    browser.find_element(By.CSS_SELECTOR, "#tf-replay input[type=submit]").click()
    wait(browser, lambda d: "it is queued again" in d.page_source)
    assert Job.objects.get(id=victim.id).state == JobState.QUEUED
    assert XSS in browser.find_element(By.CSS_SELECTOR, ".field-payload_pretty pre").text
    assert browser.title != "pwned"
    browser.save_screenshot(str(ARTIFACTS / "job-detail.png"))
