"""The Airflow UI of the real deployment in Debian's Chromium, clicked through as a new operator would.

Playwright drives the system browser (``/usr/bin/chromium``, or ``$CHROMIUM``; install it with
``tools/install-browser.sh``): Playwright's own browser download is never used. The tests run after
test_deployment.py on the same deployment and build on each other: sign in; add a Jikeyun and two Kingdee
connections (password and signature mode) in the connection form and press Test; a wrong secret fails clearly and
shows no secret; trigger the warehouse DAG with Full resync ticked, watch the run succeed in the grid and read the
report's XCom; clear one mapped load task in the grid and watch it succeed again. Each step saves a screenshot into
``tests/deployment/screenshots/`` (or ``$UI_SCREENSHOTS``), listed at the end of the session; a failing test adds one
of the page as it was.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pytest

from jikeyun_kingdee.sandbox.jikeyun import SIGN_ERROR

from tests.support import require_service

try:
    from playwright.sync_api import Locator, Page, expect, sync_playwright
except ImportError as exc:  # the ui fixture reports it: a skip on a developer machine, a failure in CI
    PLAYWRIGHT_MISSING = f"{exc}: pip install -e '.[test]'"
else:
    PLAYWRIGHT_MISSING = ""

from tests.support import REPO
from tests.support.dag_timeline import DAG_ID
from tests.support.deployment import (
    JIKEYUN_APPKEY,
    JIKEYUN_SECRET,
    KINGDEE_ACCT_ID,
    KINGDEE_APP_ID,
    KINGDEE_APP_SECRET,
    KINGDEE_PASSWORD,
    SCREENSHOT_LOG,
    Deployment,
)

pytestmark = pytest.mark.deployment

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As the machine's own browser checks start it: headless, as root, and without the background calls home that a
# closed network refuses.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("UI_SCREENSHOTS", REPO / "tests" / "deployment" / "screenshots"))
TIMEOUT_MS = 60_000  # one UI action or expectation; two shared cores make the UI slow at times
RUN_TIMEOUT_MS = 300_000  # a whole run of the warehouse DAG
WRONG_SECRET = "wrong-appsecret-ui-3d9f61"  # typed into the form; must never appear on a page or in a log

# The labels each connection form must show, True for a secret (a masked input).
JIKEYUN_FIELDS = {"Gateway URL": False, "AppKey": False, "AppSecret": True, "API version": False, "ISV token": True,
                  "Max calls per second": False, "Timeout (seconds)": False}
KINGDEE_FIELDS = {"Server URL": False, "User name": False, "Password or app secret": True,
                  "Data centre ID (AcctID)": False, "Authentication": False, "App ID": False,
                  "Locale id (LCID)": False, "Organisation number": False, "Timeout (seconds)": False}

# A page shows no secret: not as text (visible or not), not in an attribute, not in any field but a masked one.
# Answers where each was found (never the secret itself: it would end up in the test report).
PAGE_SECRETS_JS = """
secrets => {
  const found = [];
  const text = document.documentElement.textContent;
  for (const element of document.querySelectorAll("*")) {
    for (const attribute of element.attributes) {
      const masked = element.type === "password" && attribute.name === "value";
      if (!masked && secrets.some(s => attribute.value.includes(s))) found.push(`${element.tagName}@${attribute.name}`);
    }
    const field = element.tagName === "INPUT" || element.tagName === "TEXTAREA";
    if (field && element.type !== "password" && secrets.some(s => element.value.includes(s)))
      found.push(`${element.tagName} value`);
  }
  if (secrets.some(s => text.includes(s))) found.push("text");
  return found;
}
"""


@dataclass
class UI:
    """A signed-in browser page on the deployment, and the screenshots taken so far."""

    page: Page
    url: str
    shots: list[Path] = field(default_factory=list)  # listed at the end of the session

    def shot(self, name: str, full_page: bool = False) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        self.shots.append(path)
        return path

    def open(self, path: str) -> None:
        self.page.goto(self.url + path)

    def assert_no_secret(self, *secrets: str) -> None:
        leaks = self.page.evaluate(PAGE_SECRETS_JS, [s for s in secrets if s])
        assert leaks == [], f"secret shown on {self.page.url}: {leaks}"


@pytest.fixture(scope="module")
def ui(request: pytest.FixtureRequest) -> Iterator[UI]:
    available = Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)
    require_service("Chromium", available, f"{CHROMIUM} missing: run tools/install-browser.sh")
    require_service("Playwright", not PLAYWRIGHT_MISSING, PLAYWRIGHT_MISSING)
    deployment: Deployment = request.getfixturevalue("deployment")  # started only once the browser is there
    expect.set_options(timeout=TIMEOUT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):  # of an earlier session
        old.unlink()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US", timezone_id="UTC")
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield UI(context.new_page(), deployment.api_url, request.config.stash.setdefault(SCREENSHOT_LOG, []))
        finally:
            context.close()
            browser.close()


# -- the connection form ---------------------------------------------------------------------------------------


def field_group(dialog: Locator, label: str) -> Locator:
    """The form field (label, input, help text) whose visible label is ``label``."""
    label_pattern = re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$")
    return dialog.get_by_role("group").filter(has=dialog.page.locator("label").filter(has_text=label_pattern)).last


def form_field(dialog: Locator, label: str) -> Locator:
    """The input of the form field labelled ``label``.

    Found through the field's group, not ``get_by_label``: Airflow 3.3's form ties the label of a string extra to a
    generated id, not to the input's own ``element_<name>`` id.
    """
    return field_group(dialog, label).locator("input:not([type=hidden])").first


def open_section(dialog: Locator, name: str) -> None:
    """Expand one section (Standard Fields, Extra Fields) of the connection form; the others fold."""
    trigger = dialog.get_by_role("button", name=name, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    expect(trigger).to_have_attribute("aria-expanded", "true")


def check_fields(dialog: Locator, fields: dict[str, bool]) -> None:
    """Every field is shown under its label; secrets (``True``) in masked inputs, nothing else masked."""
    for label, secret in fields.items():
        input_ = form_field(dialog, label)
        expect(input_).to_be_visible()
        masked = input_.get_attribute("type") == "password"
        assert masked == secret, f"field {label!r} is {'' if masked else 'not '}masked"


def add_connection(ui: UI, conn_id: str, conn_type: str, *, fields: dict[str, bool], standard: dict[str, str],
                   extra: dict[str, str], choices: dict[str, str] | None = None, shot: str = "") -> None:
    """Admin → Connections → Add Connection: check the form's fields, fill them in, Save.

    :param fields: every label the form must show (standard and extra), ``True`` for a masked one
    :param standard: values of standard fields by label; every other field of ``fields`` is an extra field
    :param choices: options to pick in select fields, by label
    :param shot: name prefix of the two screenshots of the filled form, or none
    """
    page = ui.page
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog").filter(has=page.get_by_role("heading", name="Add Connection"))
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_role("combobox", name="Connection Type").fill(conn_type.split()[0])
    page.get_by_role("option", name=conn_type, exact=True).click()

    open_section(dialog, "Standard Fields")
    check_fields(dialog, {label: secret for label, secret in fields.items() if label in standard})
    for label, value in standard.items():
        form_field(dialog, label).fill(value)
    if shot:
        ui.shot(f"{shot}-standard-fields")
    open_section(dialog, "Extra Fields")
    check_fields(dialog, {label: secret for label, secret in fields.items() if label not in standard})
    for label, value in extra.items():
        form_field(dialog, label).fill(value)
    for label, option in (choices or {}).items():
        dialog.get_by_role("combobox", name=label).click()
        page.get_by_role("option", name=option, exact=True).click()
        expect(field_group(dialog, label)).to_contain_text(option)
    if shot:
        ui.shot(f"{shot}-extra-fields")
    ui.assert_no_secret(JIKEYUN_SECRET, KINGDEE_PASSWORD, KINGDEE_APP_SECRET, WRONG_SECRET)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(connection_row(ui, conn_id)).to_be_visible()


def connection_row(ui: UI, conn_id: str) -> Locator:
    return ui.page.get_by_role("row").filter(has=ui.page.get_by_role("cell", name=conn_id, exact=True))


def press_test(ui: UI, conn_id: str, expected_title: str) -> str:
    """Press the Test button of a listed connection; the text of the toast that answers, titled ``expected_title``."""
    toasts = ui.page.get_by_role("status").filter(has_text=re.compile("^Test Connection (Successful|Failed)"))
    ui.page.mouse.move(0, 0)  # a toast under the pointer stays; earlier answers go after 5 s
    expect(toasts).to_have_count(0)
    connection_row(ui, conn_id).get_by_role("button", name="Test Connection").click()
    expect(toasts).to_have_count(1)
    ui.page.wait_for_timeout(500)  # the toast's entry animation, for the screenshot that follows
    text = toasts.inner_text()
    assert expected_title in text, f"Test of {conn_id}: {text!r}"
    return text


def calls_since(deployment: Deployment, sandbox: str, before: dict[str, int]) -> dict[str, int]:
    """The calls a sandbox answered since its count was ``before``, by operation."""
    now = deployment.control(sandbox, "calls")
    return {operation: n - before.get(operation, 0) for operation, n in now.items() if n != before.get(operation, 0)}


def test_sign_in(ui: UI, deployment: Deployment) -> None:
    page = ui.page
    ui.open("/")
    expect(page.get_by_text("Sign into Airflow")).to_be_visible()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(deployment.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    ui.shot("01-signed-in")


def test_jikeyun_connection_form_and_test_button(ui: UI, deployment: Deployment) -> None:
    add_connection(ui, "jikeyun_ui", "Jikeyun (Jackyun ERP)", fields=JIKEYUN_FIELDS, shot="02-jikeyun-form",
                   standard={"Gateway URL": deployment.sandboxes["jikeyun"], "AppKey": JIKEYUN_APPKEY,
                             "AppSecret": JIKEYUN_SECRET},
                   extra={"Max calls per second": "50", "Timeout (seconds)": "20"})
    before = deployment.control("jikeyun", "calls")
    text = press_test(ui, "jikeyun_ui", "Test Connection Successful")
    assert f"appkey {JIKEYUN_APPKEY}" in text
    assert calls_since(deployment, "jikeyun", before) == {"erp.warehouse.get": 1}  # the hook's call, in the api-server
    ui.shot("03-jikeyun-test-successful")
    ui.assert_no_secret(JIKEYUN_SECRET)


@pytest.mark.parametrize(("mode", "secret"), [("password", KINGDEE_PASSWORD), ("signature", KINGDEE_APP_SECRET)],
                         ids=["password", "signature"])  # test ids name no secret
def test_kingdee_connection_form_and_test_button(ui: UI, deployment: Deployment, mode: str, secret: str) -> None:
    conn_id = f"kingdee_ui_{mode}"
    step = {"password": "04", "signature": "05"}[mode]
    extra = {"Data centre ID (AcctID)": KINGDEE_ACCT_ID} | ({"App ID": KINGDEE_APP_ID} if mode != "password" else {})
    add_connection(ui, conn_id, "Kingdee Cloud Galaxy (K3Cloud)", fields=KINGDEE_FIELDS,
                   shot=f"{step}-kingdee-{mode}-form",
                   standard={"Server URL": f"{deployment.sandboxes['kingdee']}/k3cloud/", "User name": "webapi",
                             "Password or app secret": secret},
                   extra=extra, choices={"Authentication": mode})
    before = deployment.control("kingdee", "calls")
    text = press_test(ui, conn_id, "Test Connection Successful")
    assert f"Kingdee data centre {KINGDEE_ACCT_ID} as webapi" in text
    calls = calls_since(deployment, "kingdee", before)
    assert calls.pop("ExecuteBillQuery", 0) >= 1, calls  # the hook reads one organisation (its paging may ask twice)
    assert calls == ({"ValidateUser": 1} if mode == "password" else {})  # a signature signs the query itself
    ui.shot(f"{step}-kingdee-{mode}-test-successful")
    ui.assert_no_secret(secret)


def test_wrong_secret_fails_clearly_without_showing_it(ui: UI, deployment: Deployment) -> None:
    before = deployment.control("jikeyun", "calls")
    add_connection(ui, "jikeyun_ui_wrong_secret", "Jikeyun (Jackyun ERP)", fields=JIKEYUN_FIELDS,
                   standard={"Gateway URL": deployment.sandboxes["jikeyun"], "AppKey": JIKEYUN_APPKEY,
                             "AppSecret": WRONG_SECRET}, extra={})
    text = press_test(ui, "jikeyun_ui_wrong_secret", "Test Connection Failed")
    ui.shot("06-wrong-secret-test-failed")
    # The hook's message, not a generic HTTP error: the call reached Jikeyun, which refused the signature with its
    # sub-code and message; one attempt, no retry.
    assert "erp.warehouse.get" in text and SIGN_ERROR in text and "sign error" in text, text
    assert calls_since(deployment, "jikeyun", before) == {"erp.warehouse.get": 1, f"erp.warehouse.get:{SIGN_ERROR}": 1}
    ui.assert_no_secret(WRONG_SECRET)
    # Nor in the edit form of the saved connection.
    connection_row(ui, "jikeyun_ui_wrong_secret").get_by_role("button", name="Edit Connection").click()
    dialog = ui.page.get_by_role("dialog").filter(has=ui.page.get_by_role("heading", name="Edit Connection"))
    expect(form_field(dialog, "AppSecret")).to_have_attribute("type", "password")
    ui.assert_no_secret(WRONG_SECRET)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


# -- the warehouse DAG -----------------------------------------------------------------------------------------


def test_trigger_full_resync_from_the_form(ui: UI, deployment: Deployment) -> None:
    page = ui.page
    page.get_by_role("link", name="Dags").click()
    page.get_by_role("link", name=DAG_ID, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/dags/{DAG_ID}$"))
    expect(page.get_by_role("heading", name=DAG_ID, exact=True)).to_be_visible()  # the list (with its own Trigger
    page.get_by_role("button", name="Trigger Dag").click()  # buttons) has gone
    dialog = page.get_by_role("dialog").filter(has=page.get_by_role("heading", name=re.compile("^Trigger Dag")))
    # The deployment's schemes start at the next full hour, so the form's default logical date (now) lies before
    # the DAG's start and the run would get no task at all: a full resync needs no window, so leave it empty.
    dialog.get_by_test_id("datetime-input").click()
    page.get_by_role("button", name="Clear start date").click()
    dialog.get_by_role("heading", name=re.compile("^Trigger Dag")).click()  # closes the date picker
    expect(dialog.get_by_test_id("datetime-input")).to_contain_text("Select date and time")
    full_resync = dialog.get_by_label("Full resync")
    expect(full_resync).not_to_be_checked()
    full_resync.locator("xpath=..").click()  # the visible switch around the input
    expect(full_resync).to_be_checked()
    ui.shot("07-trigger-form-full-resync")
    dialog.get_by_role("button", name="Trigger").click()
    expect(page).to_have_url(re.compile(r"/runs/[^/]+$"))
    run_id = unquote(page.url.rstrip("/").rsplit("/", 1)[1])
    assert deployment.dag_run(DAG_ID, run_id)["conf"] == {"full_resync": True}

    badge = page.get_by_role("heading", name=run_id, exact=True).locator("xpath=..").get_by_test_id("state-badge")
    expect(badge).to_have_text("Success", timeout=RUN_TIMEOUT_MS)
    states = deployment.task_states(DAG_ID, run_id)
    assert set(states.values()) == {"success"} and "load[0]" in states and "report" in states, states
    table = page.get_by_role("table")
    expect(page.get_by_text(f"{len(states)} Task Instances", exact=True)).to_be_visible()
    rows = table.get_by_role("row").filter(has=page.get_by_role("cell", name="Success"))
    expect(rows).to_have_count(len(states))
    for task_id in {key.split("[")[0] for key in states}:
        expect(page.get_by_test_id(f"grid-{run_id}-{task_id}")).to_be_visible()
    ui.shot("08-run-succeeded-grid")
    deployment.state["ui_run"] = run_id


def test_report_xcom_shows_the_run_summary(ui: UI, deployment: Deployment) -> None:
    run_id = ui_run(deployment)
    page = ui.page
    page.get_by_test_id(f"grid-{run_id}-report").click()
    page.get_by_role("link", name="Storage").click()
    page.get_by_text("XCom", exact=True).click()
    expect(page).to_have_url(re.compile(r"/tasks/report/xcom$"))
    page.get_by_role("button", name="Expand all extra JSON").click()
    summary = deployment.xcom(DAG_ID, run_id, "report")
    assert summary["fetched"] > 0 and summary["rejected"] == 0, summary
    for key in ("fetched", "filtered_out", "created", "updated", "unchanged", "rejected", "load_chunks"):
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))
        expect(row.get_by_test_id("table-cell-Value").get_by_role("paragraph")).to_have_text(str(summary[key]))
    summary_row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="return_value", exact=True))
    summary_row.scroll_into_view_if_needed()
    expect(summary_row).to_contain_text(f'"fetched": {summary["fetched"]}')
    ui.shot("09-report-xcom-run-summary")


def test_clear_one_mapped_load_task_from_the_grid(ui: UI, deployment: Deployment) -> None:
    run_id = ui_run(deployment)
    page = ui.page
    ui.open(f"/dags/{DAG_ID}/runs/{run_id}")
    page.get_by_test_id(f"grid-{run_id}-load").click()
    expect(page).to_have_url(re.compile(r"/tasks/load/mapped$"))
    page.get_by_role("link", name="1", exact=True).click()
    expect(page).to_have_url(re.compile(r"/tasks/load/mapped/1$"))
    expect(page.get_by_role("heading", name="load [1]", exact=True)).to_be_visible()  # not the list's Clear button
    first_try = deployment.api("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/load/1")["try_number"]
    page.get_by_role("button", name="Press shift+c to clear").click()
    dialog = page.get_by_role("dialog").filter(has=page.get_by_role("heading", name=re.compile("^Clear Task Instance")))
    affected = dialog.get_by_role("row").filter(has=page.get_by_role("cell", name="load", exact=True))
    expect(affected).to_have_count(1)  # one load task, map index 1: the other chunks stay as they are
    expect(affected.get_by_role("cell").nth(3)).to_have_text("1")
    ui.shot("10-clear-one-load-task")
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog).to_be_hidden()

    ui.open(f"/dags/{DAG_ID}/runs/{run_id}/tasks/load/mapped")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="1", exact=True))
    # cleared, the try number goes up (cell 4: Try Number) and the state starts anew, until the rerun succeeds
    expect(row.get_by_role("cell").nth(4)).to_have_text(str(first_try + 1), timeout=RUN_TIMEOUT_MS)
    expect(row.get_by_role("cell").nth(2)).to_have_text("Success", timeout=RUN_TIMEOUT_MS)
    rerun = deployment.api("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/load/1")
    assert (rerun["state"], rerun["try_number"]) == ("success", first_try + 1)
    others = [ti["try_number"] for ti in deployment.task_instances(DAG_ID, run_id)
              if ti["task_id"] == "load" and ti["map_index"] != 1]
    assert len(others) >= 2 and set(others) == {first_try}  # the other chunks were not run again
    deployment.wait_for_run(DAG_ID, run_id)  # the cleared report after it too
    ui.open(f"/dags/{DAG_ID}/runs/{run_id}")
    badge = page.get_by_role("heading", name=run_id, exact=True).locator("xpath=..").get_by_test_id("state-badge")
    expect(badge).to_have_text("Success")
    load_1 = page.get_by_role("row").filter(has=page.get_by_role("link", name="1", exact=True))  # map index 1
    expect(load_1.get_by_role("cell").nth(5)).to_have_text(str(first_try + 1))  # Try Number
    ui.shot("11-load-task-succeeded-again")


def test_no_typed_secret_in_any_log(deployment: Deployment) -> None:
    files = [path for folder in ("logs", "logs-processes") for path in (deployment.home / folder).rglob("*")
             if path.is_file()]
    leaks = [str(path.relative_to(deployment.home)) for path in files
             if WRONG_SECRET in path.read_text(encoding="utf-8", errors="replace")]
    assert leaks == []


def ui_run(deployment: Deployment) -> str:
    if "ui_run" not in deployment.state:
        pytest.fail("needs the run triggered from the UI by an earlier test of this module, which did not pass")
    return str(deployment.state["ui_run"])
