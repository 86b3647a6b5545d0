"""Versioned refund policies as providers, customers and regulators meet them: the
``flask policies`` commands, immutability in the application and in the database itself,
which version is in force when (and which one each request is judged under), the public
pages, and the managers' pages, each step in the audit chain.

Hashes are recomputed here from docs/refund-policies.md and docs/audit-format.md alone,
from the row as the database holds it, not through the application's own code."""

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.errors import Conflict
from crm.extensions import db
from crm.policies import service as policies
from tenants import tenant_context
from tests.conftest import acting_for, csrf_token, login, submit
from tests.test_portal import LINK_RE, good_fields, send_form
from tests.test_sla import travel
from tests.test_sla_pages import field_feedback, form_fields, send_page_form

EXAMPLE_FILE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "refund-policy.json"
EXAMPLE = json.loads(EXAMPLE_FILE.read_text(encoding="utf-8"))
OPERATOR = Actor.operator("test")
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Monday, 10:00 in Shanghai.
MONDAY_10AM = datetime(2026, 9, 14, 10, tzinfo=SHANGHAI)
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}
POLICY_ACTIONS = ("policy.draft_created", "policy.draft_updated", "policy.published", "policy.superseded")


# --- helpers ---------------------------------------------------------------------------


def independent_sha256(texts: dict, terms: dict) -> str:
    """The published hash as docs/refund-policies.md defines it, computed from scratch."""
    canonical = json.dumps(
        {"texts": texts, "terms": terms}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def stored_row(app, tenant, number: int) -> dict | None:
    """The version's row exactly as the database holds it, read with raw SQL."""
    with app.app_context(), tenant_context(tenant), db.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT id, status, texts, terms, sha256, effective_from FROM policy_versions"
                " WHERE tenant_id = :tenant AND number = :number"
            ),
            {"tenant": tenant.id, "number": number},
        ).one_or_none()
    if row is None:
        return None
    decoded = dict(row._mapping)
    for column in ("texts", "terms"):
        if isinstance(decoded[column], str):  # SQLite hands back the stored text
            decoded[column] = json.loads(decoded[column])
    effective = decoded["effective_from"]
    if isinstance(effective, str):  # SQLite again: naive UTC, as text
        effective = datetime.fromisoformat(effective).replace(tzinfo=UTC)
    decoded["effective_from"] = effective and effective.astimezone(UTC)
    return decoded


def version_numbers(app, tenant) -> list[int]:
    with app.app_context(), tenant_context(tenant), db.engine.connect() as connection:
        return list(
            connection.scalars(
                text("SELECT number FROM policy_versions WHERE tenant_id = :t ORDER BY number"),
                {"t": tenant.id},
            )
        )


def policy_actions(app, tenant) -> list[tuple[str, dict]]:
    with acting_for(app, tenant) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(POLICY_ACTIONS)).order_by(AuditEvent.seq)
        )
        return [(event.action, event.data) for event in events]


def terms(**changes) -> dict:
    return {**EXAMPLE["terms"], **changes}


def draft(app, tenant, texts: dict | None = None, **term_changes) -> int:
    """A draft made through the service, as the import command makes it; its number."""
    with acting_for(app, tenant) as session:
        version = policies.create_draft(texts or EXAMPLE["texts"], terms(**term_changes), actor=OPERATOR)
        number = version.number
        session.commit()
        return number


def publish(app, tenant, number: int, effective_from: datetime | None = None) -> None:
    with acting_for(app, tenant) as session:
        policies.publish(policies.require(number), actor=OPERATOR, effective_from=effective_from)
        session.commit()


def published(app, tenant, texts: dict | None = None, **term_changes) -> int:
    number = draft(app, tenant, texts, **term_changes)
    publish(app, tenant, number)
    return number


class _PageReader(HTMLParser):
    """Every element's tag and attributes, and the text inside each script element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def assert_nothing_runs(page: str) -> None:
    """What a browser would execute from this page: only the layout's own scripts
    (Bootstrap's and crm/static's); no inline script, javascript: link, event-handler attribute, or image (the
    usual carrier of onerror)."""
    reader = _PageReader()
    reader.feed(page)
    assert not "".join(reader.scripts).strip()
    for tag, attrs in reader.elements:
        assert tag not in ("img", "iframe", "object", "embed"), (tag, attrs)
        if tag == "script":
            assert attrs.get("src", "").startswith(("/bootstrap/static/", "/static/")), attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            if name in ("href", "src", "action", "formaction"):
                assert not value.strip().lower().startswith(("javascript:", "data:", "vbscript:")), (
                    tag,
                    value,
                )


def history_rows(page: str) -> dict[str, str]:
    """The public history table: version -> status as shown."""
    return dict(re.findall(r">(v\d+)</a></td>\s*<td>[^<]*</td>\s*<td>([^<]+)</td>", page))


def policy_url(tenant, path: str = "") -> str:
    return f"/t/{tenant.slug}/policy{path}"


def admin_url(tenant, path: str = "") -> str:
    return f"/t/{tenant.slug}/admin/policies{path}"


def local_input(moment: datetime) -> str:
    """A moment as a datetime-local input holds it, in the tenant's zone (Shanghai)."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def policy_file(tmp_path):
    """Write a policy file (JSON content, or raw text); its path as the command takes it."""

    def write(content: object, name: str = "policy.json") -> str:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
        return str(path)

    return write


def policies_command(runner, *args: str):
    return runner.invoke(args=["policies", *args])


def assert_clean_refusal(result, *words: str) -> None:
    """Exit status 1 with a message saying what is wrong, not a traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, (word, result.output)


# --- 1. the command line ------------------------------------------------------------------


def test_a_policy_file_is_imported_published_and_listed_with_a_hash_anyone_can_recompute(
    app, runner, make_tenant
):
    tenant = make_tenant()
    imported = policies_command(runner, "import", "--tenant", tenant.slug, str(EXAMPLE_FILE))
    assert imported.exit_code == 0, imported.output
    assert imported.output == "1\n"
    listed = policies_command(runner, "list", "--tenant", tenant.slug)
    assert listed.output.splitlines() == ["v1\tdraft\t-\t-"]

    published_now = policies_command(runner, "publish", "--tenant", tenant.slug, "1")
    assert published_now.exit_code == 0, published_now.output
    row = stored_row(app, tenant, 1)
    # The file was already in canonical form: it is stored exactly as written.
    assert (row["texts"], row["terms"]) == (EXAMPLE["texts"], EXAMPLE["terms"])
    expected = independent_sha256(row["texts"], row["terms"])
    assert row["sha256"] == expected
    assert re.fullmatch(
        rf"v1 published, sha256 {expected}, effective \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00\n",
        published_now.output,
    ), published_now.output

    listed = policies_command(runner, "list", "--tenant", tenant.slug).output.splitlines()
    assert len(listed) == 1
    number, standing, effective, sha = listed[0].split("\t")
    assert (number, standing, sha) == ("v1", "in force", expected)
    assert datetime.fromisoformat(effective).utcoffset() == timedelta(hours=8)


def test_the_stored_hash_covers_the_normalised_content_not_the_file_bytes(
    app, runner, make_tenant, policy_file
):
    """Loosely written terms are stored canonically; the hash is of what is stored."""
    tenant = make_tenant()
    loose = {
        "texts": {"en": "  # Refunds\r\n\r\nWithin 7 days.  "},
        "terms": {**EXAMPLE["terms"], "handling_fee_percent": "5.00", "handling_fee_cap": "30"},
    }
    assert policies_command(runner, "import", "--tenant", tenant.slug, policy_file(loose)).output == "1\n"
    output = policies_command(runner, "publish", "--tenant", tenant.slug, "1").output
    row = stored_row(app, tenant, 1)
    assert row["texts"] == {"en": "# Refunds\n\nWithin 7 days.\n"}
    assert (row["terms"]["handling_fee_percent"], row["terms"]["handling_fee_cap"]) == ("5", "30.00")
    assert f"sha256 {independent_sha256(row['texts'], row['terms'])}," in output


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"texts": {"en": "x"}, "terms": ', ["not valid JSON"]),
        ({**EXAMPLE, "comment": "draft for Q4"}, ["comment"]),
        ({"texts": EXAMPLE["texts"], "terms": terms(refund_window_days=7)}, ["refund_window_days"]),
        ({"texts": EXAMPLE["texts"], "terms": terms(handling_fee_cap=30.5)}, ["handling_fee_cap", "quotes"]),
        (
            {
                "texts": EXAMPLE["texts"],
                "terms": terms(non_refundable_items=[{"name": "SIM", "amount": 20.0}]),
            },
            ["non_refundable_items[0].amount"],
        ),
        ({"texts": EXAMPLE["texts"], "terms": terms(cooling_off_days=-1)}, ["cooling_off_days"]),
        ({"texts": EXAMPLE["texts"], "terms": terms(payout_days=-3)}, ["payout_days"]),
        (
            {"texts": EXAMPLE["texts"], "terms": terms(handling_fee_percent="100.01")},
            ["handling_fee_percent"],
        ),
        ({"texts": {"fr": "Remboursements"}, "terms": EXAMPLE["terms"]}, ["fr"]),
        ({"terms": EXAMPLE["terms"]}, ["texts"]),
    ],
    ids=[
        "not-json",
        "unknown-key",
        "unknown-term",
        "float-cap",
        "float-item-amount",
        "negative-cooling-off",
        "negative-payout",
        "percent-over-100",
        "unknown-locale",
        "no-texts",
    ],
)
def test_a_bad_policy_file_is_refused_by_name_and_creates_nothing(
    app, runner, make_tenant, policy_file, content, words
):
    tenant = make_tenant()
    result = policies_command(runner, "import", "--tenant", tenant.slug, policy_file(content))
    assert_clean_refusal(result, "Error:", *words)
    assert version_numbers(app, tenant) == []
    assert policies_command(runner, "list", "--tenant", tenant.slug).output == ""
    assert policy_actions(app, tenant) == []


def test_publishing_mistakes_are_refused_cleanly_and_change_nothing(app, runner, make_tenant):
    tenant = make_tenant()
    assert policies_command(runner, "import", "--tenant", tenant.slug, str(EXAMPLE_FILE)).exit_code == 0

    def publish_v1(*options: str):
        return policies_command(runner, "publish", "--tenant", tenant.slug, "1", *options)

    assert_clean_refusal(publish_v1("--effective-from", "2030-01-01T00:00:00"), "--effective-from", "+08:00")
    assert_clean_refusal(publish_v1("--effective-from", "next monday"), "ISO-8601")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert_clean_refusal(publish_v1("--effective-from", yesterday), "cannot take effect in the past")
    assert_clean_refusal(
        policies_command(runner, "publish", "--tenant", tenant.slug, "9"), "There is no policy version 9."
    )
    assert_clean_refusal(
        policies_command(runner, "publish", "--tenant", "no-such-tenant", "1"), "no-such-tenant"
    )
    assert stored_row(app, tenant, 1)["status"] == "draft"
    assert [action for action, _data in policy_actions(app, tenant)] == ["policy.draft_created"]

    first = publish_v1()
    assert first.exit_code == 0, first.output
    sha = stored_row(app, tenant, 1)["sha256"]
    assert_clean_refusal(publish_v1(), "Version 1 is published and can no longer change")
    assert stored_row(app, tenant, 1)["sha256"] == sha
    assert [action for action, _data in policy_actions(app, tenant)] == [
        "policy.draft_created",
        "policy.published",
    ]


def test_a_version_scheduled_from_the_command_line_is_listed_with_its_local_time(app, runner, make_tenant):
    tenant = make_tenant()
    policies_command(runner, "import", "--tenant", tenant.slug, str(EXAMPLE_FILE))
    later = (datetime.now(SHANGHAI) + timedelta(days=30)).replace(microsecond=0)
    result = policies_command(
        runner, "publish", "--tenant", tenant.slug, "1", "--effective-from", later.isoformat()
    )
    assert result.exit_code == 0, result.output
    assert f"effective {later.isoformat()}" in result.output
    # Published but not yet in force.
    assert policies_command(runner, "list", "--tenant", tenant.slug).output.startswith(
        f"v1\tpublished\t{later.isoformat()}\t"
    )


# --- 2. a published version never changes ---------------------------------------------------


def test_the_service_refuses_to_edit_a_published_version(app, make_tenant):
    tenant = make_tenant()
    number = published(app, tenant)
    before = stored_row(app, tenant, number)
    with acting_for(app, tenant) as session:
        version = policies.require(number)
        with pytest.raises(Conflict, match="published and can no longer change"):
            policies.update_draft(version, {"en": "Changed."}, terms(payout_days=90), actor=OPERATOR)
        with pytest.raises(Conflict):
            policies.publish(version, actor=OPERATOR)
        session.rollback()
    assert stored_row(app, tenant, number) == before


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE policy_versions SET texts = :texts WHERE tenant_id = :tenant AND number = :number",
        "UPDATE policy_versions SET sha256 = :sha WHERE tenant_id = :tenant AND number = :number",
        "UPDATE policy_versions SET status = 'draft' WHERE tenant_id = :tenant AND number = :number",
        "DELETE FROM policy_versions WHERE tenant_id = :tenant AND number = :number",
    ],
    ids=["texts", "sha256", "unpublish", "delete"],
)
def test_the_database_itself_refuses_to_change_a_published_version(app, make_tenant, statement):
    """Someone with SQL access through the application's own connection cannot rewrite a
    published policy: the trigger (PostgreSQL or SQLite, whichever runs) refuses."""
    tenant = make_tenant()
    number = published(app, tenant)
    before = stored_row(app, tenant, number)
    parameters = {
        "texts": json.dumps({"en": "We never refund."}),
        "sha": "0" * 64,
        "tenant": tenant.id,
        "number": number,
    }
    with acting_for(app, tenant) as session:
        with pytest.raises(DBAPIError, match="published"):
            session.execute(text(statement), parameters)
        session.rollback()
    assert stored_row(app, tenant, number) == before


def test_the_database_lets_drafts_change(app, make_tenant):
    """The trigger guards published rows only: a draft is still work in progress."""
    tenant = make_tenant()
    number = draft(app, tenant)
    with acting_for(app, tenant) as session:
        changed = session.execute(
            text("UPDATE policy_versions SET texts = :texts WHERE tenant_id = :tenant AND number = :number"),
            {"texts": json.dumps({"en": "Rewritten draft.\n"}), "tenant": tenant.id, "number": number},
        )
        assert changed.rowcount == 1
        session.commit()
    assert stored_row(app, tenant, number)["texts"] == {"en": "Rewritten draft.\n"}


# --- 3. which version is in force, and which one each request keeps -----------------------


def test_a_scheduled_version_takes_over_at_its_time_and_each_request_keeps_its_own(
    app, client, make_tenant, make_user
):
    start = MONDAY_10AM
    switch = start + timedelta(days=3)
    with travel(start):
        tenant = make_tenant()
        first = published(app, tenant, {"en": "# Version one\n"})
        second = draft(app, tenant, {"en": "# Version two\n"}, payout_days=10)
        publish(app, tenant, second, effective_from=switch)

    def in_force_page() -> str:
        page = client.get(policy_url(tenant))
        assert page.status_code == 200
        return page.text

    def submitted() -> tuple[str, str]:
        """A request through the hosted form: its receipt and tracking pages."""
        response = send_form(client, tenant.slug, good_fields(purchase_date="2026-09-01"))
        assert response.status_code == 302, response.text
        receipt = client.get(response.headers["Location"]).text
        tracking = client.get(LINK_RE.search(receipt).group(1).replace("http://localhost", "")).text
        return receipt, tracking

    with travel(start + timedelta(days=1)):
        page = in_force_page()
        assert "Refund policy, version 1" in page and "Version one" in page and "Version two" not in page
        form = client.get(f"/t/{tenant.slug}/refund").text
        assert "version 1, in force since" in form and f'href="{policy_url(tenant, "/1")}"' in form
        assert history_rows(client.get(policy_url(tenant, "/history")).text) == {
            "v2": "Scheduled",
            "v1": "In force",
        }
        # Anyone may read the scheduled version already; it says it is not yet in force.
        scheduled = client.get(policy_url(tenant, "/2")).text
        assert "Scheduled" in scheduled and "Within 10 days of approval" in scheduled
        early_receipt, early_tracking = submitted()

    with travel(switch - timedelta(seconds=1)):
        assert "Refund policy, version 1" in in_force_page()

    with travel(switch):
        assert "Refund policy, version 2" in in_force_page()

    with travel(switch + timedelta(days=1)):
        page = in_force_page()
        assert "Version two" in page and "Within 10 days of approval" in page
        assert history_rows(client.get(policy_url(tenant, "/history")).text) == {
            "v2": "In force",
            "v1": "Superseded",
        }
        old = client.get(policy_url(tenant, "/1")).text
        assert "Superseded" in old and "Version one" in old
        late_receipt, late_tracking = submitted()
        # The early request still shows the version it was received under.
        early_tracking_now = client.get(
            LINK_RE.search(early_receipt).group(1).replace("http://localhost", "")
        ).text
        manager = make_user(tenant, "manager")
        login(client, tenant, manager)
        early_ticket = client.get(f"/t/{tenant.slug}/tickets/1001").text
        late_ticket = client.get(f"/t/{tenant.slug}/tickets/1002").text

    for page, number in (
        (early_receipt, first),
        (early_tracking, first),
        (early_tracking_now, first),
        (early_ticket, first),
        (late_receipt, second),
        (late_tracking, second),
        (late_ticket, second),
    ):
        assert f'href="{policy_url(tenant, f"/{number}")}"' in page
        other = second if number == first else first
        assert f'href="{policy_url(tenant, f"/{other}")}"' not in page
    assert "Refund policy, version 1" in early_tracking and "Refund policy, version 2" in late_tracking

    stamps = {number: stored_row(app, tenant, number) for number in (first, second)}
    actions = policy_actions(app, tenant)
    assert [action for action, _data in actions] == [
        "policy.draft_created",
        "policy.published",
        "policy.draft_created",
        "policy.published",
        "policy.superseded",
    ]
    assert actions[1][1] == {
        "number": 1,
        "sha256": stamps[1]["sha256"],
        "effective_from": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    at_switch = switch.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert actions[3][1] == {"number": 2, "sha256": stamps[2]["sha256"], "effective_from": at_switch}
    assert actions[4][1] == {"number": 1, "sha256": stamps[1]["sha256"], "by_number": 2, "at": at_switch}
    with acting_for(app, tenant) as session:
        superseded = session.scalars(select(AuditEvent).where(AuditEvent.action == "policy.superseded")).one()
        assert superseded.subject_id == str(stamps[1]["id"])
        created = session.scalars(select(AuditEvent).where(AuditEvent.action == "ticket.created")).all()
        assert [event.data["policy_version_id"] for event in created] == [stamps[1]["id"], stamps[2]["id"]]


def test_a_version_slotted_in_before_a_scheduled_one_is_recorded_as_ending_when_that_starts(
    app, client, make_tenant
):
    """v2 is scheduled for Thursday; v3, published later for Tuesday, is in force from
    Tuesday to Thursday, and the audit trail says both when v1 ends and when v3 does."""
    tuesday, thursday = MONDAY_10AM + timedelta(days=1), MONDAY_10AM + timedelta(days=3)
    with travel(MONDAY_10AM):
        tenant = make_tenant()
        published(app, tenant, {"en": "# One\n"})
        publish(app, tenant, draft(app, tenant, {"en": "# Two\n"}), effective_from=thursday)
        publish(app, tenant, draft(app, tenant, {"en": "# Three\n"}), effective_from=tuesday)
    with travel(tuesday + timedelta(hours=1)):
        assert "<h1>Three</h1>" in client.get(policy_url(tenant)).text
        assert history_rows(client.get(policy_url(tenant, "/history")).text) == {
            "v2": "Scheduled",
            "v3": "In force",
            "v1": "Superseded",
        }
    with travel(thursday + timedelta(hours=1)):
        assert "<h1>Two</h1>" in client.get(policy_url(tenant)).text
        assert history_rows(client.get(policy_url(tenant, "/history")).text) == {
            "v2": "In force",
            "v3": "Superseded",
            "v1": "Superseded",
        }

    def instant(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    ended = [
        (data["number"], data["by_number"], data["at"])
        for action, data in policy_actions(app, tenant)
        if action == "policy.superseded"
    ]
    assert ended == [(1, 2, instant(thursday)), (1, 3, instant(tuesday)), (3, 2, instant(thursday))]


def test_a_request_before_any_policy_is_published_pins_none_and_the_form_links_to_none(
    app, client, make_tenant
):
    tenant = make_tenant()
    form = client.get(f"/t/{tenant.slug}/refund").text
    assert "refund policy, version" not in form and "/policy" not in form
    response = send_form(client, tenant.slug, good_fields(purchase_date="2026-01-01"))
    receipt = client.get(response.headers["Location"]).text
    assert "Refund policy" not in receipt


# --- 4. the public pages ---------------------------------------------------------------------


def test_without_a_published_version_there_is_no_policy_page(app, client, make_tenant):
    tenant = make_tenant()
    assert client.get(policy_url(tenant)).status_code == 404
    number = draft(app, tenant)
    assert client.get(policy_url(tenant)).status_code == 404
    assert client.get(policy_url(tenant, f"/{number}")).status_code == 404  # drafts are never public
    assert client.get(policy_url(tenant, "/99")).status_code == 404
    assert client.get(policy_url(tenant, "/99999999999999999999")).status_code == 404
    history = client.get(policy_url(tenant, "/history"))
    assert history.status_code == 200 and "No version has been published yet." in history.text


def test_the_public_page_shows_number_effective_date_hash_text_and_terms(app, client, make_tenant):
    with travel(MONDAY_10AM):
        tenant = make_tenant(name="Huabei Telecom")
        number = published(app, tenant)
        page = client.get(policy_url(tenant))
    assert page.status_code == 200
    body = page.text
    sha = stored_row(app, tenant, number)["sha256"]
    assert "Huabei Telecom" in body and "Refund policy, version 1" in body
    assert "Effective from Mon, Sep 14, 2026 10:00" in body
    assert f'<span class="font-monospace">{sha}</span>' in body
    assert "<h1>Refund policy</h1>" in body and "<strong>Cooling-off.</strong>" in body
    for shown in (
        "7 days from purchase: full refund",
        "Refunded pro rata",
        "Number activation fee: CN¥50.00",
        "5% (at most CN¥30.00)",
        "Within 15 days of approval",
        "invoice, contract",
    ):
        assert shown in body, shown


def test_markdown_is_rendered_and_anything_that_could_run_is_neutralised(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    hostile = (
        "# Our promise\n\n"
        "- first point\n- second point\n\n"
        "<script>alert(1)</script>\n\n"
        "[x](javascript:alert(1))\n\n"
        "<img src=x onerror=alert(1)>\n\n"
        '<a href="javascript:alert(2)" onclick="alert(3)">raw link</a>\n\n'
        "[y](JaVaScRiPt:alert(4)) [z](data:text/html;base64,PHNjcmlwdD5hbGVydCg1KTwvc2NyaXB0Pg==)\n\n"
        "<javascript:alert(6)>\n\n"
        "[terms](https://example.test/terms)\n"
    )
    number = draft(app, tenant, {"en": hostile})
    # A manager previewing another's draft is as exposed as a customer.
    preview = client.get(admin_url(tenant, f"/{number}"))
    assert preview.status_code == 200
    publish(app, tenant, number)
    page = client.get(policy_url(tenant, f"/{number}")).text
    for body in (preview.text, page):
        assert "<h1>Our promise</h1>" in body
        assert "<li>first point</li>" in body and "<li>second point</li>" in body
        assert '<a href="https://example.test/terms" rel="nofollow noopener">terms</a>' in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body  # shown as the text it is
    assert_nothing_runs(page)
    assert_nothing_runs(preview.text)


def test_a_chinese_visitor_reads_the_chinese_text(app, client, make_tenant):
    tenant = make_tenant()
    published(app, tenant)
    page = client.get(policy_url(tenant), headers=CHINESE).text
    assert "退款政策第 1 版" in page and "<h1>退款政策</h1>" in page and "冷静期" in page
    assert 'lang="zh-CN"' in page and "此版本没有您所用语言的正文" not in page
    english = client.get(policy_url(tenant)).text
    assert "<h1>Refund policy</h1>" in english and "退款政策" not in english


def test_a_version_without_chinese_text_is_shown_in_english_and_says_so(app, client, make_tenant):
    tenant = make_tenant()
    published(app, tenant, {"en": "# Refunds\n\nWithin 7 days.\n"})
    page = client.get(policy_url(tenant), headers=CHINESE).text
    assert "退款政策第 1 版" in page  # the page itself is in Chinese
    assert "此版本没有您所用语言的正文，按发布时的原文显示。" in page
    assert '<div class="policy-text" lang="en"><h1>Refunds</h1>' in page
    english = client.get(policy_url(tenant)).text
    assert "has no text in your language" not in english


# --- 5. the managers' pages -------------------------------------------------------------------


def test_a_manager_starts_from_the_starter_text_then_from_the_latest_version(app, client, signed_in):
    tenant, manager = signed_in("manager")
    listed = client.get(admin_url(tenant))
    assert listed.status_code == 200 and "No versions yet. Start with a draft." in listed.text
    response = send_page_form(client, admin_url(tenant), {})
    assert response.status_code == 302 and response.headers["Location"] == admin_url(tenant, "/1")
    page = client.get(admin_url(tenant, "/1")).text
    assert "Refund policy, version 1" in page and "Draft" in page
    fields = form_fields(page)
    assert fields["text_en"].startswith("# Refund policy\n\nDescribe when customers get their money back")
    assert fields["text_zh_CN"].startswith("# 退款政策")
    assert (fields["cooling_off_days"], fields["payout_days"], fields["handling_fee_percent"]) == (
        "7",
        "15",
        "0",
    )

    edited = send_page_form(
        client, admin_url(tenant, "/1"), {"text_en": "# Our own words\n", "payout_days": "9"}
    )
    assert edited.status_code == 302
    send_page_form(client, admin_url(tenant), {})
    copy = form_fields(client.get(admin_url(tenant, "/2")).text)
    assert copy["text_en"] == "# Our own words\n" and copy["payout_days"] == "9"
    assert version_numbers(app, tenant) == [1, 2]
    with acting_for(app, tenant) as session:
        created = session.scalars(select(AuditEvent).where(AuditEvent.action == "policy.draft_created")).all()
        assert [(event.data["number"], event.actor_id) for event in created] == [
            (1, str(manager.id)),
            (2, str(manager.id)),
        ]


def test_a_manager_edits_a_draft_and_the_preview_shows_it(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    number = draft(app, tenant)
    url = admin_url(tenant, f"/{number}")
    response = send_page_form(
        client,
        url,
        {
            "text_en": "# Refunds\n\n- Within **14** days\n- By bank transfer",
            "text_zh_CN": "",
            "handling_fee_percent": "2.5",
            "handling_fee_cap": "",
            "non_refundable_items": "Number activation fee | 50\nSIM card | 20.5",
            "required_evidence": "invoice\n\nID card",
            "prorate_unused_balance": None,
            "payout_days": "10",
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == url
    page = client.get(url).text
    assert "Draft saved; the preview below shows it." in page
    preview = page[page.index('id="preview-heading"') :]
    assert "<h1>Refunds</h1>" in preview and "<li>Within <strong>14</strong> days</li>" in preview
    assert "No text in this language." in preview  # the Chinese text was cleared
    for shown in (
        "2.5%",
        "Number activation fee: CN¥50.00<br>SIM card: CN¥20.50",
        "Not refunded after the cooling-off period",
        "Within 10 days of approval",
        "invoice, ID card",
    ):
        assert shown in preview, shown
    row = stored_row(app, tenant, number)
    assert row["texts"] == {"en": "# Refunds\n\n- Within **14** days\n- By bank transfer\n"}
    assert row["terms"]["non_refundable_items"] == [
        {"name": "Number activation fee", "amount": "50.00"},
        {"name": "SIM card", "amount": "20.50"},
    ]
    assert (row["terms"]["handling_fee_cap"], row["terms"]["prorate_unused_balance"]) == (None, False)
    # Sent back as shown, nothing changes and nothing is recorded.
    assert send_page_form(client, url, {}).status_code == 302
    assert "Nothing changed." in client.get(url).text
    assert [action for action, _data in policy_actions(app, tenant)] == [
        "policy.draft_created",
        "policy.draft_updated",
    ]


@pytest.mark.parametrize(
    "changes, field_id, message",
    [
        ({"handling_fee_percent": "abc"}, "handling_fee_percent", "a percentage from 0 to 100"),
        ({"handling_fee_percent": "100.01"}, "handling_fee_percent", "a percentage from 0 to 100"),
        ({"handling_fee_cap": "-1"}, "handling_fee_cap", "an amount of 0 or more"),
        (
            {"non_refundable_items": "SIM card | 20\nActivation fee 50.00"},
            "non_refundable_items",
            "Line 2: write",
        ),
        ({"payout_days": "0"}, "payout_days", "between 1 and 365"),
        ({"cooling_off_days": "seven"}, "cooling_off_days", "Not a valid integer value."),
        ({"required_evidence": "invoice\nInvoice"}, "required_evidence", "listed twice"),
        (
            {"text_en": "", "text_zh_CN": " "},
            "text_en",
            "Write the policy&#39;s text in at least one language.",
        ),
    ],
)
def test_bad_draft_input_is_refused_beside_its_field_and_nothing_is_saved(
    app, client, signed_in, changes, field_id, message
):
    tenant, _manager = signed_in("manager")
    number = draft(app, tenant)
    before = stored_row(app, tenant, number)
    response = send_page_form(client, admin_url(tenant, f"/{number}"), changes)
    assert 400 <= response.status_code < 500
    feedback = field_feedback(response.text, field_id)
    assert message in feedback and "is-invalid" in feedback
    for name, value in changes.items():
        assert form_fields(response.text)[name] == value.strip() or name.startswith("text_")  # kept
    assert stored_row(app, tenant, number) == before
    assert [action for action, _data in policy_actions(app, tenant)] == ["policy.draft_created"]


def test_publishing_needs_the_confirmation_and_a_time_not_in_the_past(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    number = draft(app, tenant)
    url = admin_url(tenant, f"/{number}")

    unconfirmed = send_page_form(client, url, {}, action="/publish")
    assert unconfirmed.status_code == 400
    assert "This field is required." in field_feedback(unconfirmed.text, "confirm")

    yesterday = local_input(datetime.now(UTC) - timedelta(days=1))
    past = send_page_form(client, url, {"confirm": "y", "effective_from": yesterday}, action="/publish")
    assert past.status_code == 422
    assert "cannot take effect in the past" in field_feedback(past.text, "effective_from")
    assert form_fields(past.text, "/publish")["effective_from"] == yesterday
    assert stored_row(app, tenant, number)["status"] == "draft"

    later = (datetime.now(SHANGHAI) + timedelta(days=2)).replace(second=0, microsecond=0)
    response = send_page_form(
        client, url, {"confirm": "y", "effective_from": local_input(later)}, action="/publish"
    )
    assert response.status_code == 302 and response.headers["Location"] == url
    page = client.get(url).text
    assert "Version 1 is published." in page and "Save draft" not in page
    row = stored_row(app, tenant, number)
    assert row["status"] == "published"
    assert row["sha256"] == independent_sha256(row["texts"], row["terms"])
    # Not in force yet: the manager's list and the public pages say it is scheduled.
    assert ">Scheduled<" in client.get(admin_url(tenant)).text
    assert client.get(policy_url(tenant)).status_code == 404
    assert "Scheduled" in client.get(policy_url(tenant, f"/{number}")).text
    assert history_rows(client.get(policy_url(tenant, "/history")).text) == {"v1": "Scheduled"}
    (event,) = [data for action, data in policy_actions(app, tenant) if action == "policy.published"]
    assert event["effective_from"] == later.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_published_version_cannot_be_changed_through_the_page(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    number = published(app, tenant)
    before = stored_row(app, tenant, number)
    url = admin_url(tenant, f"/{number}")
    page = client.get(url).text
    assert "Save draft" not in page and "As published" in page and before["sha256"] in page
    fields = {
        "text_en": "We never refund.",
        "cooling_off_days": "0",
        "prorate_unused_balance": "",
        "handling_fee_percent": "100",
        "payout_days": "365",
    }
    changed = submit(client, url, fields)
    assert changed.status_code == 409
    republished = submit(client, f"{url}/publish", {"confirm": "y"}, form_page=url)
    assert republished.status_code == 409
    assert "Version 1 is published and can no longer change." in republished.text
    assert stored_row(app, tenant, number) == before
    assert [action for action, _data in policy_actions(app, tenant)] == [
        "policy.draft_created",
        "policy.published",
    ]


def test_the_compare_page_shows_lines_added_and_removed(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    old = published(app, tenant, {"en": "# Refunds\n\nWithin 7 days.\nBy bank transfer.\n"})
    new = draft(app, tenant, {"en": "# Refunds\n\nWithin 14 days.\nBy bank transfer.\n"}, payout_days=10)
    listed = client.get(admin_url(tenant)).text
    assert 'id="compare-heading"' in listed
    page = client.get(admin_url(tenant, f"/compare?a={old}&b={new}"))
    assert page.status_code == 200
    body = page.text
    added = re.findall(
        r'<div class="added">.*?</span>(?:<span aria-hidden="true">\+ </span>)(.*?)</div>', body
    )
    removed = re.findall(
        r'<div class="removed">.*?</span>(?:<span aria-hidden="true">− </span>)(.*?)</div>', body
    )
    assert "Within 14 days." in added and "  &#34;payout_days&#34;: 10," in added
    assert "Within 7 days." in removed and "  &#34;payout_days&#34;: 15," in removed
    assert "By bank transfer." not in added + removed
    assert "added:" in body and "removed:" in body  # said to screen readers, not only in colour
    missing = client.get(admin_url(tenant, f"/compare?a={old}&b=99"))
    assert missing.status_code == 302 and missing.headers["Location"] == admin_url(tenant)


ADMIN_PAGES = [
    ("get", "", None),
    ("get", "/1", None),
    ("get", "/compare?a=1&b=1", None),
    ("post", "", {}),
    ("post", "/1", {"text_en": "Agent's words", "cooling_off_days": "7", "payout_days": "15"}),
    ("post", "/1/publish", {"confirm": "y"}),
]


@pytest.mark.parametrize("method, path, data", ADMIN_PAGES)
def test_an_agent_cannot_use_the_managers_pages(app, client, signed_in, method, path, data):
    tenant, _agent = signed_in("agent")
    draft(app, tenant)
    before = stored_row(app, tenant, 1)
    if method == "get":
        response = client.get(admin_url(tenant, path))
    else:
        response = submit(client, admin_url(tenant, path), data, form_page=f"/t/{tenant.slug}/account")
    assert response.status_code == 403
    assert version_numbers(app, tenant) == [1] and stored_row(app, tenant, 1) == before


@pytest.mark.parametrize("method, path, data", ADMIN_PAGES)
def test_signed_out_visitors_are_sent_to_sign_in(app, client, make_tenant, method, path, data):
    tenant = make_tenant()
    draft(app, tenant)
    login_page = f"/t/{tenant.slug}/login"
    if method == "get":
        response = client.get(admin_url(tenant, path))
    else:  # with a valid CSRF token, so that it is the sign-in check that stops it
        response = submit(client, admin_url(tenant, path), data, form_page=login_page)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{login_page}?next=")
    assert version_numbers(app, tenant) == [1]
    assert stored_row(app, tenant, 1)["status"] == "draft"


def test_another_tenants_manager_can_neither_see_nor_change_this_tenants_versions(
    app, client, make_tenant, make_user
):
    provider_a, provider_b = make_tenant(name="Provider A"), make_tenant(name="Provider B")
    published(app, provider_a, {"en": "# The policy of A\n"})
    draft(app, provider_a, {"en": "# A's next draft\n"})
    published(app, provider_b, {"en": "# The policy of B\n"})
    manager_b = make_user(provider_b, "manager")
    assert login(client, provider_b, manager_b).status_code == 302

    # B's manager, on A's pages, is not signed in there: sent to A's sign-in page.
    token = csrf_token(client, f"/t/{provider_b.slug}/account")
    for method, path, data in (
        ("get", "", {}),
        ("get", "/1", {}),
        ("get", "/2", {}),
        ("post", "/2", {"text_en": "B was here", "cooling_off_days": "7", "payout_days": "15"}),
        ("post", "/2/publish", {"confirm": "y"}),
        ("post", "", {}),
    ):
        if method == "get":
            response = client.get(admin_url(provider_a, path))
        else:
            response = client.post(admin_url(provider_a, path), data={"csrf_token": token, **data})
        assert response.status_code == 302, (method, path)
        assert response.headers["Location"].startswith(f"/t/{provider_a.slug}/login?next=")
    assert version_numbers(app, provider_a) == [1, 2]
    assert stored_row(app, provider_a, 2)["texts"] == {"en": "# A's next draft\n"}
    assert stored_row(app, provider_a, 2)["status"] == "draft"

    # B's manager, on B's pages: A's version 2 does not exist there.
    assert client.get(admin_url(provider_b, "/2")).status_code == 404
    assert "next draft" not in client.get(admin_url(provider_b)).text
    assert client.get(admin_url(provider_b, "/compare?a=1&b=2")).status_code == 302

    # The public pages are each provider's own.
    page_b = client.get(policy_url(provider_b)).text
    assert "The policy of B" in page_b and "policy of A" not in page_b
    page_a = client.get(policy_url(provider_a)).text
    assert "The policy of A" in page_a and "policy of B" not in page_a
    assert client.get(policy_url(provider_b, "/2")).status_code == 404


# --- 6. the audit chain holds every step ----------------------------------------------------------


def test_every_step_is_audited_and_the_chain_verifies(app, client, runner, signed_in):
    tenant, manager = signed_in("manager")
    send_page_form(client, admin_url(tenant), {})
    send_page_form(
        client, admin_url(tenant, "/1"), {"text_en": "# First\n", "text_zh_CN": "", "payout_days": "12"}
    )
    send_page_form(client, admin_url(tenant, "/1"), {"confirm": "y"}, action="/publish")
    send_page_form(client, admin_url(tenant), {})
    send_page_form(client, admin_url(tenant, "/2"), {"text_en": "# Second\n"})
    send_page_form(client, admin_url(tenant, "/2"), {"confirm": "y"}, action="/publish")

    rows = {number: stored_row(app, tenant, number) for number in (1, 2)}
    with acting_for(app, tenant) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(POLICY_ACTIONS)).order_by(AuditEvent.seq)
        ).all()
        steps = [(event.action, event.data["number"], event.subject_id, event.actor_id) for event in events]
        hashes = {
            event.action + str(event.data["number"]): event.data.get("draft_sha256") for event in events
        }
        superseded = events[-1].data
    me = str(manager.id)
    v1, v2 = str(rows[1]["id"]), str(rows[2]["id"])
    assert steps == [
        ("policy.draft_created", 1, v1, me),
        ("policy.draft_updated", 1, v1, me),
        ("policy.published", 1, v1, me),
        ("policy.draft_created", 2, v2, me),
        ("policy.draft_updated", 2, v2, me),
        ("policy.published", 2, v2, me),
        ("policy.superseded", 1, v1, me),
    ]
    # The last draft hash recorded is the hash that was published.
    assert (
        hashes["policy.draft_updated2"]
        == rows[2]["sha256"]
        == independent_sha256(rows[2]["texts"], rows[2]["terms"])
    )
    assert superseded["by_number"] == 2 and superseded["sha256"] == rows[1]["sha256"]
    listed = client.get(admin_url(tenant)).text
    assert re.search(r">v2</a></td>\s*<td>\s*<span[^>]*>In force<", listed)
    assert re.search(r">v1</a></td>\s*<td>\s*<span[^>]*>Superseded<", listed)
    result = runner.invoke(args=["audit", "verify", "--tenant", tenant.slug])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_the_starter_text_is_never_published(app, client, signed_in):
    """A first draft starts with placeholder text in both languages; publishing it as it
    is would put the placeholder before customers, so it is refused until written."""
    tenant, _manager = signed_in("manager")
    send_page_form(client, admin_url(tenant), {})
    refused = send_page_form(client, admin_url(tenant, "/1"), {"confirm": "y"}, action="/publish")
    assert refused.status_code == 422
    assert "The English text is still the starter placeholder" in refused.text
    with acting_for(app, tenant):
        assert stored_row(app, tenant, 1)["status"] == "draft"
    send_page_form(client, admin_url(tenant, "/1"), {"text_en": "# Refunds\n", "text_zh_CN": ""})
    published = send_page_form(client, admin_url(tenant, "/1"), {"confirm": "y"}, action="/publish")
    assert published.status_code == 302
