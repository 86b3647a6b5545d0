"""The SLA pages over HTTP, as staff and customers see them: the policy, calendar and
deadline-rule editors, a ticket's Deadlines card, the deadline views of the queue, the
customer's receipt and tracking page, and each person's notifications.

Forms are sent the way a browser sends them: the page is read, its form's fields are
taken as they stand, the few a person would change are changed, and the form is posted.
Times are Shanghai's, on the default calendar (Monday to Friday, 09:00-18:00)."""

import re
from datetime import datetime
from html.parser import HTMLParser
from io import BytesIO
from urllib.parse import quote

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from crm.audit.models import AuditEvent
from crm.auth.models import User
from crm.sla import sweep, versions
from crm.sla.models import ConfigKind
from crm.sla.rules import DEFAULT_CALENDAR
from crm.tickets import service as tickets
from crm.tickets.models import Ticket
from tests.conftest import acting_for, login, submit, unique
from tests.test_portal import LINK_RE, PNG, good_fields, send_form
from tests.test_sla import SHANGHAI, YEAR_END_ICS, shanghai, travel
from tests.test_ticket_service import refund_request
from tests.test_workspace import change, references

# A Wednesday morning: the default rule (8 h first response, 45 h resolution) makes a
# refund received now due at 18:00 today, with its warning at 16:24 (80 % of 8 h).
# Tests that travel sign in after travelling: a session signed later is refused.
WEDNESDAY_10AM = shanghai(2026, 9, 16, 10)


# --- reading and sending a page's form, as a browser does --------------------------------


class _FormReader(HTMLParser):
    """Each form of a page: its action and the fields a browser would send from it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, MultiDict]] = []
        self._fields: MultiDict | None = None
        self._select: dict | None = None
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self._fields = MultiDict()
            self.forms.append((attributes.get("action") or "", self._fields))
        elif self._fields is None or "disabled" in attributes or not attributes.get("name"):
            if tag == "option" and self._select is not None:
                self._option(attributes)
        elif tag == "input":
            kind = (attributes.get("type") or "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in attributes:
                    self._fields.add(attributes["name"], attributes.get("value") or "on")
            elif kind not in ("file", "submit", "button", "reset", "image"):
                self._fields.add(attributes["name"], attributes.get("value") or "")
        elif tag == "select":
            self._select = {"name": attributes["name"], "first": None, "chosen": []}
        elif tag == "textarea":
            self._textarea = (attributes["name"], [])

    def _option(self, attributes: dict) -> None:
        value = attributes.get("value") or ""
        if self._select["first"] is None:
            self._select["first"] = value
        if "selected" in attributes:
            self._select["chosen"].append(value)

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._fields = None
        elif tag == "select" and self._select is not None:
            chosen = self._select["chosen"] or [self._select["first"]]
            self._fields.setlist(self._select["name"], [value for value in chosen if value is not None])
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            name, parts = self._textarea
            text = "".join(parts).replace("\r\n", "\n")
            # A browser drops the line break that follows the opening tag.
            self._fields.add(name, text.removeprefix("\n"))
            self._textarea = None


def page_form(page: str, action: str = "") -> tuple[str, MultiDict]:
    """The action and unchanged fields of the page's form that posts to itself (``action``
    empty) or to an address ending in ``action``."""
    reader = _FormReader()
    reader.feed(page)
    found = [
        (form_action, fields)
        for form_action, fields in reader.forms
        if form_action == action or (action and form_action.endswith(action))
    ]
    assert len(found) == 1, f"{len(found)} forms post to {action!r}"
    return found[0]


def form_fields(page: str, action: str = "") -> MultiDict:
    return page_form(page, action)[1]


def send_page_form(client, url: str, changes: dict, *, action: str = "", files: dict | None = None):
    """Open ``url``, change some of its form's fields (None unticks a box), and send it."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    target, fields = page_form(page.text, action)
    for name, value in changes.items():
        if value is None:
            fields.poplist(name)
        elif isinstance(value, list):
            fields.setlist(name, value)
        else:
            fields[name] = value
    # Browsers send a text area's line breaks as CRLF.
    data = {name: [value.replace("\n", "\r\n") for value in values] for name, values in fields.lists()}
    for name, (content, filename) in (files or {}).items():
        data[name] = (BytesIO(content), filename)
    return client.post(target or url, data=data)


def field_feedback(page: str, field_id: str) -> str:
    """The field with ``field_id`` and what is shown after it, up to the next field."""
    start = page.rindex("<", 0, page.index(f'id="{field_id}"'))
    end = page.find('<div class="mb-3', start)
    return page[start : end if end != -1 else None]


# --- the world the tests set up ----------------------------------------------------------


def admin_url(tenant, path: str) -> str:
    return f"/t/{tenant.slug}/admin/{path}"


def calendar_url(tenant, name: str = DEFAULT_CALENDAR) -> str:
    return admin_url(tenant, f"calendars/{quote(name)}")


def audit_events(app, tenant, action: str) -> list[AuditEvent]:
    with acting_for(app, tenant) as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        return list(session.scalars(query))


def versions_made(app, tenant, kind: str) -> list[int]:
    return [event.data["version"] for event in audit_events(app, tenant, f"{kind}.version_created")]


def refund_received(app, tenant, **overrides) -> int:
    """A refund request from the hosted form, received now; its ticket's number."""
    with acting_for(app, tenant) as session:
        ticket = tickets.submit_refund_request(refund_request(**overrides), nonce=unique("n"), ip=None).ticket
        number = ticket.number
        session.commit()
        return number


def open_by_staff(app, tenant, user, kind: str, channel: str = "phone", priority: str = "normal") -> int:
    """A ticket an agent opens for a call; its number."""
    with acting_for(app, tenant) as session:
        ticket = tickets.open_ticket(
            customer=tickets.CustomerDetails(name="李雷", phone="13900139000", locale="zh_CN"),
            kind=kind,
            channel=channel,
            priority=priority,
            description="宽带一直断线。",
            user=session.get(User, user.id),
            ip=None,
        )
        session.commit()
        return ticket.number


def ticket_page(client, tenant, number: int) -> str:
    page = client.get(f"/t/{tenant.slug}/tickets/{number}")
    assert page.status_code == 200
    return page.text


def deadlines_card(page: str) -> str:
    start = page.index('id="deadlines-heading"')
    return page[start : page.index("</section>", start)]


def sign_in_at(client, make_tenant, make_user, role: str = "manager", tenant=None):
    tenant = tenant or make_tenant()
    user = make_user(tenant, role)
    assert login(client, tenant, user).status_code == 302
    return tenant, user


# --- the SLA policy ----------------------------------------------------------------------


def test_a_manager_saves_new_targets_as_a_version_that_new_tickets_follow(app, client, signed_in):
    with travel(WEDNESDAY_10AM):
        tenant, manager = signed_in("manager")
        url = admin_url(tenant, "sla")
        # The default policy: rule 1 for urgent tickets, rule 2 for the rest.
        response = send_page_form(client, url, {"rule_rows-1-first_response": "2h"})
        assert response.status_code == 302 and response.headers["Location"] == url
        page = client.get(url).text
        assert "SLA policy saved as version 2." in page
        assert 'SLA policy <span class="text-secondary h5">v2</span>' in page
        assert 'value="2h"' in page
        created = audit_events(app, tenant, "sla_policy.version_created")
        assert [(event.data["version"], event.actor_id) for event in created] == [
            (1, None),
            (2, str(manager.id)),
        ]

        number = refund_received(app, tenant)
        card = deadlines_card(ticket_page(client, tenant, number))
    assert "First response" in card and "Due Wed, Sep 16 12:00" in card
    assert "2 h of business time on calendar “Business hours v1” (rule 2 of SLA policy v2)" in card


def test_saving_the_policy_unchanged_makes_no_version(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    url = admin_url(tenant, "sla")
    response = send_page_form(client, url, {})
    assert response.status_code == 302
    assert "Nothing changed." in client.get(url).text
    assert versions_made(app, tenant, "sla_policy") == [1]


def test_a_rule_is_removed_and_another_added_in_the_blank_row(app, client, signed_in):
    with travel(WEDNESDAY_10AM):
        tenant, manager = signed_in("manager")
        url = admin_url(tenant, "sla")
        response = send_page_form(
            client,
            url,
            {
                "rule_rows-0-remove": "y",
                "rule_rows-2-kind": "complaint",
                "rule_rows-2-first_response": "30m",
                "rule_rows-2-resolution": "1h 30m",
            },
        )
        assert response.status_code == 302
        page = client.get(url).text
        assert "Rule 1" in page and "Rule 2" in page and "Rule 3" not in page and "Add a rule" in page
        fields = form_fields(page)
        # The new rule's order (0, as offered) puts it before the catch-all.
        assert (fields["rule_rows-0-kind"], fields["rule_rows-0-resolution"]) == ("complaint", "1h 30m")
        assert (fields["rule_rows-1-priority"], fields["rule_rows-1-first_response"]) == ("*", "8h")
        # The urgent rule is gone: an urgent ticket now gets the catch-all's 8 h.
        number = open_by_staff(app, tenant, manager, "refund", priority="urgent")
        card = deadlines_card(ticket_page(client, tenant, number))
    assert "8 h of business time on calendar “Business hours v1” (rule 2 of SLA policy v2)" in card


def test_a_rule_behind_one_that_covers_it_is_refused(app, client, signed_in):
    """A complaint rule ordered after the catch-all could never apply: refused, and why."""
    tenant, _manager = signed_in("manager")
    url = admin_url(tenant, "sla")
    response = send_page_form(
        client,
        url,
        {"rule_rows-2-kind": "complaint", "rule_rows-2-first_response": "30m", "rule_rows-2-position": "99"},
    )
    assert response.status_code == 422
    assert "Rule 3 would never apply: rule 2 comes first and covers every ticket it would." in response.text
    assert "SLA policy" in response.text and "v1" in client.get(url).text


@pytest.mark.parametrize(
    "changes, field_id, message",
    [
        ({"rule_rows-1-first_response": "abc"}, "rule_rows-1-first_response", "Write a duration such as 8h"),
        ({"rule_rows-0-resolution": "400d"}, "rule_rows-0-resolution", "Write a duration such as 8h"),
        ({"rule_rows-1-warn_percent": "100"}, "rule_rows-1-warn_percent", "between 1 and 99"),
    ],
)
def test_a_bad_target_is_refused_beside_its_field(app, client, signed_in, changes, field_id, message):
    tenant, _manager = signed_in("manager")
    response = send_page_form(client, admin_url(tenant, "sla"), changes)
    assert 400 <= response.status_code < 500
    assert message in field_feedback(response.text, field_id)
    assert "is-invalid" in field_feedback(response.text, field_id)
    assert f">{field_id.split('-')[-1]}<" not in response.text  # no code names shown as errors
    assert versions_made(app, tenant, "sla_policy") == [1]


def test_reassigning_without_saying_to_whom_is_refused(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    response = send_page_form(
        client,
        admin_url(tenant, "sla"),
        {"rule_rows-1-actions": ["notify_assignee", "reassign"], "rule_rows-1-reassign_to": ""},
    )
    assert 400 <= response.status_code < 500
    assert "Say whom to reassign a breached ticket to." in response.text
    assert versions_made(app, tenant, "sla_policy") == [1]
    saved = send_page_form(
        client,
        admin_url(tenant, "sla"),
        {"rule_rows-1-actions": ["notify_assignee", "reassign"], "rule_rows-1-reassign_to": "managers"},
    )
    assert saved.status_code == 302
    page = client.get(admin_url(tenant, "sla")).text
    assert form_fields(page).getlist("rule_rows-1-actions") == ["notify_assignee", "reassign"]
    assert form_fields(page)["rule_rows-1-reassign_to"] == "managers"
    assert send_page_form(client, admin_url(tenant, "sla"), {}).status_code == 302
    assert "Nothing changed." in client.get(admin_url(tenant, "sla")).text
    assert versions_made(app, tenant, "sla_policy") == [1, 2]


def test_a_policy_with_every_target_cleared_is_refused(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    cleared = {
        f"rule_rows-{row}-{target}": ""
        for row in (0, 1)
        for target in ("first_response", "next_response", "resolution")
    }
    response = send_page_form(client, admin_url(tenant, "sla"), cleared)
    assert 400 <= response.status_code < 500
    assert "A policy needs at least one rule." in response.text
    assert versions_made(app, tenant, "sla_policy") == [1]


# --- calendars ---------------------------------------------------------------------------


def test_editing_a_calendar_saves_a_version_with_its_hours_holidays_and_working_days(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    url = calendar_url(tenant)
    response = send_page_form(
        client,
        url,
        {
            "hours": "mon-fri 09:00-12:00,13:30-18:00\nsat 10:00-16:00",
            "holidays": "2026-12-24 Company day\n\n2026-12-25",
            "workdays": "2026-12-27 10:00-15:00",
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == url
    page = client.get(url).text
    assert "Calendar saved as version 2." in page
    assert f"{DEFAULT_CALENDAR} <span" in page and ">v2</span>" in page
    fields = form_fields(page)
    assert fields["hours"] == "mon-fri 09:00-12:00,13:30-18:00\nsat 10:00-16:00\nsun closed"
    assert fields["holidays"] == "2026-12-24 Company day\n2026-12-25"
    assert fields["workdays"] == "2026-12-27 10:00-15:00"
    assert fields["timezone"] == "Asia/Shanghai"
    listed = client.get(admin_url(tenant, "calendars")).text
    assert "mon-fri 09:00-12:00,13:30-18:00; sat 10:00-16:00; sun closed" in listed
    assert "2 holidays, 1 extra working days" in listed
    assert versions_made(app, tenant, "calendar") == [1, 2]


@pytest.mark.parametrize(
    "changes, field_id, message",
    [
        (
            {"holidays": "2026-12-24 Company day\n2026-13-01 x"},
            "holidays",
            "Line 2, “2026-13-01 x”: not a YYYY-MM-DD date",
        ),
        ({"workdays": "2026-12-27 25:00-26:00"}, "workdays", "Line 1, “2026-12-27 25:00-26:00”"),
        ({"hours": "mon-fri 18:00-09:00"}, "hours", "ends before it starts"),
        ({"hours": "funday 09:00-17:00"}, "hours", "“funday” is not a day"),
        ({"hours": ""}, "hours", "This field is required."),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "The calendar was not changed"),
    ],
)
def test_bad_calendar_input_is_refused_beside_its_field_and_saves_nothing(
    app, client, signed_in, changes, field_id, message
):
    tenant, _manager = signed_in("manager")
    response = send_page_form(client, calendar_url(tenant), changes)
    assert 400 <= response.status_code < 500
    assert message in field_feedback(response.text, field_id)
    for name, value in changes.items():
        assert form_fields(response.text)[name] == value  # what was typed is kept
    assert versions_made(app, tenant, "calendar") == [1]


def test_a_chinese_page_explains_bad_hours_in_chinese(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    response = send_page_form(client, calendar_url(tenant), {"hours": "mon-fri 09:00-12:00,11:00-13:00"})
    assert response.status_code == 422
    feedback = field_feedback(response.text, "hours")
    assert "日历未修改：“mon-fri 09:00-12:00,11:00-13:00”：09:00-12:00 与 11:00-13:00 重叠。" in feedback
    response = send_page_form(client, calendar_url(tenant), {"hours": "周一至周五 9点到6点"})
    assert "“周一至周五”不是星期几的写法（请使用 mon, tue, wed" in field_feedback(response.text, "hours")
    assert versions_made(app, tenant, "calendar") == [1]


@pytest.mark.parametrize(
    "locale, national_day, nothing_changed",
    [(None, "National Day", "Nothing changed."), ("zh_CN", "国庆节", "没有任何改动。")],
)
def test_importing_mainland_chinas_holidays_adds_them_and_the_make_up_days(
    app, client, signed_in, make_tenant, locale, national_day, nothing_changed
):
    """The holidays are named in the tenant's language (with none, the page's: English)."""
    tenant, _manager = signed_in("manager", make_tenant(locale=locale))
    url = calendar_url(tenant)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = send_page_form(client, url, {"year": "2026"}, action="/import-cn")
    assert response.status_code == 302
    page = client.get(url).text
    fields = form_fields(page)
    assert f"2026-10-01 {national_day}" in fields["holidays"].splitlines()
    assert "2026-10-10 09:00-18:00" in fields["workdays"].splitlines()  # a Saturday worked
    # The page shows the calendar exactly as saved: sent back untouched, nothing changes.
    assert send_page_form(client, url, {}).status_code == 302
    assert nothing_changed in client.get(url).text
    assert versions_made(app, tenant, "calendar") == [1, 2]


def test_a_calendar_whose_name_has_punctuation_is_edited_like_any_other(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    name = "Ops & Support (UK)"
    created = send_page_form(
        client, admin_url(tenant, "calendars"), {"name": name, "timezone": "Europe/London"}
    )
    assert created.status_code == 302
    url = created.headers["Location"]
    assert send_page_form(client, url, {"year": "2026"}, action="/import-cn").status_code == 302
    response = send_page_form(client, url, {"hours": "mon-fri 08:00-16:00"})
    assert response.status_code == 302 and response.headers["Location"] == url
    page = client.get(url).text
    assert "Calendar saved as version 3." in page and "Ops &amp; Support (UK)" in page
    assert form_fields(page)["hours"].startswith("mon-fri 08:00-16:00")


def test_a_year_the_package_does_not_know_is_refused(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    url = calendar_url(tenant)
    response = send_page_form(client, url, {"year": "2100"}, action="/import-cn")
    assert 400 <= response.status_code < 500
    assert "has no data for 2100" in field_feedback(response.text, "year")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    response = send_page_form(client, url, {"year": "2100"}, action="/import-cn")
    assert "数据包中没有 2100 年的数据" in field_feedback(response.text, "year")
    assert versions_made(app, tenant, "calendar") == [1]


def test_importing_an_ics_file_adds_its_all_day_events_as_holidays(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    url = calendar_url(tenant)
    response = send_page_form(
        client, url, {}, action="/import-ics", files={"ics": (YEAR_END_ICS, "closures.ics")}
    )
    assert response.status_code == 302
    holidays = form_fields(client.get(url).text)["holidays"].splitlines()
    # A two-day closure; the file's timed meeting is not a holiday.
    assert holidays == ["2026-12-31 Year end closure", "2027-01-01 Year end closure"]


@pytest.mark.parametrize(
    "content, filename, message",
    [
        (PNG, "holidays.ics", "This is not an iCalendar file"),
        (b"", "holidays.ics", "This is not an iCalendar file"),
        (b"BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n", "empty.ics", "The file holds no all-day events"),
        (b"", "", "This field is required."),  # no file chosen
    ],
)
def test_an_upload_that_is_not_a_holiday_calendar_is_refused_and_saves_nothing(
    app, client, signed_in, content, filename, message
):
    tenant, _manager = signed_in("manager")
    url = calendar_url(tenant)
    response = send_page_form(client, url, {}, action="/import-ics", files={"ics": (content, filename)})
    assert 400 <= response.status_code < 500
    assert message in field_feedback(response.text, "ics")
    assert versions_made(app, tenant, "calendar") == [1]


def test_a_new_calendar_is_created_listed_and_its_name_kept_unique(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    url = admin_url(tenant, "calendars")
    response = send_page_form(client, url, {"name": "Night shift", "timezone": "Europe/London"})
    assert response.status_code == 302 and response.headers["Location"] == calendar_url(tenant, "Night shift")
    page = client.get(calendar_url(tenant, "Night shift")).text
    assert "Calendar saved as version 1." in page and form_fields(page)["timezone"] == "Europe/London"
    listed = client.get(url).text
    assert "Night shift" in listed and "Europe/London" in listed and DEFAULT_CALENDAR in listed

    again = send_page_form(client, url, {"name": "Night shift", "timezone": "Asia/Shanghai"})
    assert 400 <= again.status_code < 500
    assert "There is already a calendar named Night shift." in field_feedback(again.text, "name")
    bad_zone = send_page_form(client, url, {"name": "Day shift", "timezone": "Nowhere/Atlantis"})
    assert 400 <= bad_zone.status_code < 500
    assert "The calendar was not changed" in field_feedback(bad_zone.text, "timezone")
    assert client.get(calendar_url(tenant, "Day shift")).status_code == 404
    # The policy's rules can now count on the new calendar.
    assert '<option value="Night shift">Night shift</option>' in client.get(admin_url(tenant, "sla")).text


# --- regulatory deadlines ----------------------------------------------------------------


def test_built_in_profiles_are_named_and_sourced_in_the_pages_language(client, signed_in):
    tenant, _manager = signed_in("manager")
    english = client.get(admin_url(tenant, "deadlines")).text
    assert "China: telecom complaint, 15 calendar days" in english
    chinese = client.get(admin_url(tenant, "deadlines"), headers={"Accept-Language": "zh-CN"}).text
    assert "中国：电信投诉，15 个自然日" in chinese and "工业和信息化部《电信服务规范》" in chinese
    assert "China: telecom complaint" not in chinese


def test_deadline_rules_assign_built_in_and_custom_profiles_that_new_tickets_follow(
    app, client, signed_in, make_user
):
    tenant, _manager = signed_in("manager")
    agent = make_user(tenant, "agent")
    url = admin_url(tenant, "deadlines")
    response = send_page_form(
        client, url, {"assignments_-0-kind": "complaint", "assignments_-0-profile": "cn-telecom"}
    )
    assert response.status_code == 302
    assert "Deadline rules saved as version 2." in client.get(url).text
    # A profile of our own, and assigned in the same submit.
    response = send_page_form(
        client,
        url,
        {
            "custom_-0-code": "internal-30",
            "custom_-0-name": "Internal: 30 days",
            "custom_-0-days": "30",
            "custom_-0-unit": "calendar_days",
            "custom_-0-source": "Board decision 2026-07: every inquiry settled within a month.",
            "assignments_-1-kind": "inquiry",
            "assignments_-1-profile": "internal-30",
        },
    )
    assert response.status_code == 302
    page = client.get(url).text
    assert "Deadline rules saved as version 3." in page
    assert "Board decision 2026-07" in page and "internal-30" in page
    fields = form_fields(page)
    assert (fields["custom_-0-code"], fields["custom_-0-days"]) == ("internal-30", "30")
    assert [fields[f"assignments_-{row}-profile"] for row in range(3)] == ["cn-telecom", "internal-30", ""]
    assert send_page_form(client, url, {}).status_code == 302
    assert "Nothing changed." in client.get(url).text
    assert versions_made(app, tenant, "deadlines") == [1, 2, 3]

    with travel(WEDNESDAY_10AM):
        login(client, tenant, agent)
        complaint = open_by_staff(app, tenant, agent, "complaint")
        inquiry = open_by_staff(app, tenant, agent, "inquiry", "email")
        complaint_card = deadlines_card(ticket_page(client, tenant, complaint))
        inquiry_card = deadlines_card(ticket_page(client, tenant, inquiry))
    assert "Regulatory final answer" in complaint_card
    # 15 calendar days after 16 September end with 1 October, National Day: the period
    # ends with the next working day, 8 October (Civil Code art. 203).
    assert "Due end of Thu, Oct 8" in complaint_card
    assert "moved from Oct 1 (National Day) to Oct 8, the next working day" in complaint_card
    assert "15 calendar days after the day of receipt" in complaint_card
    assert "Source: MIIT Telecommunications Service Specifications (电信服务规范)" in complaint_card
    assert "Regulatory final answer" in inquiry_card and "Due end of Fri, Oct 16" in inquiry_card
    assert "(Internal: 30 days)" in inquiry_card
    assert "Source: Board decision 2026-07: every inquiry settled within a month." in inquiry_card


def test_a_custom_profile_can_count_a_countrys_official_days_and_move_off_holidays(app, client, signed_in):
    tenant, _manager = signed_in("manager")
    url = admin_url(tenant, "deadlines")
    page = client.get(url).text
    # Each built-in profile says where its days are counted.
    assert "Counted in Asia/Shanghai time on the official working days of mainland China" in page
    assert "Counted in Europe/London time on the official working days of the UK (England and Wales)" in page
    assert "uk-psd" in page and "Payment Services Regulations 2017 reg. 101" in page
    response = send_page_form(
        client,
        url,
        {
            "custom_-0-code": "internal-10",
            "custom_-0-name": "Internal: 10 days",
            "custom_-0-days": "10",
            "custom_-0-unit": "calendar_days",
            "custom_-0-country": "CN",
            "custom_-0-roll_forward": "y",
        },
    )
    assert response.status_code == 302
    fields = form_fields(client.get(url).text)
    assert (fields["custom_-0-country"], fields["custom_-0-roll_forward"]) == ("CN", "y")
    with acting_for(app, tenant):
        [own] = versions.deadline_rules(versions.current(ConfigKind.DEADLINES)).custom
    assert (own.country, own.timezone, own.roll_forward) == ("CN", "Asia/Shanghai", True)
    # Saved again unchanged: nothing changes.
    assert send_page_form(client, url, {}).status_code == 302
    assert "Nothing changed." in client.get(url).text


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"custom_-0-code": "Internal 30!", "custom_-0-name": "Ours", "custom_-0-days": "30"},
            "A profile code is 3–40 lowercase letters, digits and hyphens, and not a built-in one.",
        ),
        (
            {"custom_-0-code": "cn-telecom", "custom_-0-name": "Ours", "custom_-0-days": "30"},
            "A profile code is 3–40 lowercase letters, digits and hyphens, and not a built-in one.",
        ),
        ({"custom_-0-code": "ours", "custom_-0-name": "Ours"}, "Give the number of days."),
        ({"custom_-0-code": "ours", "custom_-0-days": "30"}, "A profile needs a name"),
        ({"custom_-0-code": "ours", "custom_-0-name": "Ours", "custom_-0-days": "367"}, "between 1 and 366"),
    ],
)
def test_an_invalid_custom_profile_is_refused(app, client, signed_in, changes, message):
    tenant, _manager = signed_in("manager")
    response = send_page_form(client, admin_url(tenant, "deadlines"), changes)
    assert 400 <= response.status_code < 500
    assert message in response.text
    assert versions_made(app, tenant, "deadlines") == [1]


# --- who may see the pages ---------------------------------------------------------------

ADMIN_PAGES = [
    "admin/calendars",
    f"admin/calendars/{quote(DEFAULT_CALENDAR)}",
    "admin/sla",
    "admin/deadlines",
]


@pytest.mark.parametrize("role", ["agent", "auditor"])
@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_only_managers_and_admins_open_the_sla_admin_pages(client, signed_in, role, path):
    tenant, _user = signed_in(role)
    assert client.get(f"/t/{tenant.slug}/{path}").status_code == 403
    assert client.post(f"/t/{tenant.slug}/{path}", data={}).status_code in (400, 403)
    refused = client.get(f"/t/{tenant.slug}/{path}").text
    assert "You do not have access to this page." in refused and "Save as a new version" not in refused


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_managers_and_admins_find_the_sla_pages_in_the_menu(client, signed_in, role):
    tenant, _user = signed_in(role)
    home = client.get(f"/t/{tenant.slug}/tickets").text
    for path in ADMIN_PAGES:
        if path.count("/") == 1:
            assert f'href="/t/{tenant.slug}/{path}"' in home
        assert client.get(f"/t/{tenant.slug}/{path}").status_code == 200


def test_agents_do_not_see_the_sla_admin_menu(client, signed_in):
    tenant, _agent = signed_in("agent")
    home = client.get(f"/t/{tenant.slug}/tickets").text
    assert "/admin/sla" not in home and "/admin/calendars" not in home


@pytest.mark.parametrize("path", [*ADMIN_PAGES, "notifications"])
def test_signed_out_visitors_are_sent_to_sign_in(client, make_tenant, path):
    tenant = make_tenant()
    response = client.get(f"/t/{tenant.slug}/{path}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"/t/{tenant.slug}/login")


# --- tenants kept apart ------------------------------------------------------------------


@pytest.mark.parametrize("path", [*ADMIN_PAGES, "notifications"])
def test_a_manager_never_opens_another_tenants_sla_pages(client, make_tenant, make_user, path):
    other = make_tenant()
    _mine, _manager = sign_in_at(client, make_tenant, make_user)
    response = client.get(f"/t/{other.slug}/{path}")
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response.headers["Location"].startswith(f"/t/{other.slug}/login")
    assert other.name not in response.text


@pytest.mark.parametrize(
    "path, data",
    [
        ("admin/sla", {"rule_rows-0-first_response": "1m"}),
        ("admin/calendars", {"name": "Planted", "timezone": "UTC"}),
        (f"admin/calendars/{quote(DEFAULT_CALENDAR)}", {"timezone": "UTC", "hours": "24x7"}),
        (f"admin/calendars/{quote(DEFAULT_CALENDAR)}/import-cn", {"year": "2026"}),
        ("admin/deadlines", {"assignments_-0-profile": "uk-fca"}),
        ("notifications/read", {}),
    ],
)
def test_a_managers_valid_form_sent_to_another_tenant_changes_nothing_there(
    app, client, make_tenant, make_user, path, data
):
    other = make_tenant()
    mine, _manager = sign_in_at(client, make_tenant, make_user)
    response = submit(client, f"/t/{other.slug}/{path}", data, form_page=admin_url(mine, "sla"))
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response.headers["Location"].startswith(f"/t/{other.slug}/login")
    for kind in ("sla_policy", "calendar", "deadlines"):
        assert len(versions_made(app, other, kind)) <= 1
    assert audit_events(app, other, "notifications.read") == []


def test_a_calendar_made_in_one_tenant_is_not_in_anothers(app, make_tenant, make_user):
    first, second = app.test_client(), app.test_client()
    tenant_a, _manager_a = sign_in_at(first, make_tenant, make_user)
    tenant_b, _manager_b = sign_in_at(second, make_tenant, make_user)
    created = send_page_form(
        first, admin_url(tenant_a, "calendars"), {"name": "Only in A", "timezone": "Europe/London"}
    )
    assert created.status_code == 302
    assert "Only in A" in first.get(admin_url(tenant_a, "calendars")).text
    assert "Only in A" not in second.get(admin_url(tenant_b, "calendars")).text
    assert second.get(calendar_url(tenant_b, "Only in A")).status_code == 404
    assert "Only in A" not in second.get(admin_url(tenant_b, "sla")).text
    # Same name in B: a calendar of B's own, not a clash with A's.
    again = send_page_form(
        second, admin_url(tenant_b, "calendars"), {"name": "Only in A", "timezone": "Asia/Shanghai"}
    )
    assert again.status_code == 302
    assert versions_made(app, tenant_a, "calendar") == [1, 1]


def test_one_tenants_notifications_never_show_to_another_tenants_staff(app, make_tenant, make_user):
    ours, theirs = app.test_client(), app.test_client()
    with travel(WEDNESDAY_10AM) as traveller:
        tenant_a, manager_a = sign_in_at(ours, make_tenant, make_user)
        tenant_b, agent_b = sign_in_at(theirs, make_tenant, make_user, "agent")
        number = refund_received(app, tenant_b)
        change(app, tenant_b, number, tickets.assign, agent_b.id, user_id=agent_b.id)
        traveller.move_to(shanghai(2026, 9, 16, 18, 0, 30))
        with app.app_context():
            sweep.sweep()
        login(ours, tenant_a, manager_a)  # signed in again: a session idle for 8 hours ends
        login(theirs, tenant_b, agent_b)
        theirs_page = theirs.get(f"/t/{tenant_b.slug}/notifications").text
        our_page = ours.get(f"/t/{tenant_a.slug}/notifications").text
    assert "Deadline missed" in theirs_page and "RF-1001" in theirs_page
    assert "No notifications." in our_page
    assert "Deadline missed" not in our_page and "unread" not in our_page


# --- a ticket's deadlines and the queue --------------------------------------------------


def test_the_deadlines_card_says_what_is_due_when_and_why(app, client, signed_in):
    with travel(WEDNESDAY_10AM) as traveller:
        tenant, _agent = signed_in("agent")
        number = refund_received(app, tenant)
        traveller.move_to(shanghai(2026, 9, 16, 11))
        card = deadlines_card(ticket_page(client, tenant, number))
        traveller.move_to(shanghai(2026, 9, 16, 17))
        warned = deadlines_card(ticket_page(client, tenant, number))
    lines = card.split("<li")[1:]
    assert len(lines) == 2  # nearest due first
    first, resolution = lines
    assert "First response" in first and "On track" in first and "Due Wed, Sep 16 18:00" in first
    assert "Because: 8 h of business time on calendar “Business hours v1” (rule 2 of SLA policy v1)." in first
    # 45 h: Wed 8 h, Thu, Fri, Mon, Tue 9 h each, then Wednesday 09:00-10:00.
    assert "Resolution" in resolution and "Due Wed, Sep 23 10:00" in resolution
    assert "Because: 45 h of business time on calendar “Business hours v1” (rule 2 of SLA policy v1)." in (
        resolution
    )
    assert "Due soon" in warned.split("<li")[1] and "On track" in warned.split("<li")[2]


def test_a_breached_deadline_shows_overdue_and_by_how_much(app, client, signed_in):
    with travel(WEDNESDAY_10AM) as traveller:
        tenant, agent = signed_in("agent")
        number = refund_received(app, tenant)
        traveller.move_to(shanghai(2026, 9, 17, 10, 15))
        login(client, tenant, agent)  # signed in again: a session idle for 8 hours ends
        card = deadlines_card(ticket_page(client, tenant, number))
    first = card.split("<li")[1]
    assert "First response" in first and "Overdue" in first
    assert "Was due Wed, Sep 16 18:00; late by 16 h 15 min" in first


def test_the_card_explains_the_holidays_and_working_days_on_the_way_in_either_language(
    app, client, signed_in
):
    tenant, manager = signed_in("manager")
    closed = {
        "holidays": "2026-09-17 Company <day>\n2026-09-18 Company <day>",
        "workdays": "2026-09-19 09:00-18:00",
    }
    assert send_page_form(client, calendar_url(tenant), closed).status_code == 302
    with travel(WEDNESDAY_10AM):
        login(client, tenant, manager)
        number = refund_received(app, tenant)
        card = deadlines_card(ticket_page(client, tenant, number))
        page = client.get(f"/t/{tenant.slug}/tickets/{number}", headers={"Accept-Language": "zh-CN"})
        chinese = deadlines_card(page.text)
    # Thursday and Friday are closed and Saturday works: 8 + 9 + 9 + 9 + 9 h, then 1 h.
    resolution = card.split("<li")[2]
    assert "Due Thu, Sep 24 10:00" in resolution
    # Names people typed are shown as text, never run as markup.
    assert (
        "Sep 17–Sep 18: holiday Company &lt;day&gt;; Sep 19 is a working day on this calendar." in resolution
    )
    assert "解决" in chinese and "截止 9月24日周四 10:00" in chinese
    assert "9月17日–9月18日：节假日 Company &lt;day&gt;" in chinese
    assert "9月19日 按本日历为工作日（调休）" in chinese


def test_the_queue_lists_breached_and_breaching_tickets_and_sorts_by_next_due(app, client, signed_in):
    with travel(WEDNESDAY_10AM) as traveller:
        tenant, agent = signed_in("agent")
        breached = refund_received(app, tenant)  # first response due Wed 18:00
        answered = refund_received(app, tenant)
        change(app, tenant, answered, tickets.reply, "我们已收到，正在处理。", user_id=agent.id)
        traveller.move_to(shanghai(2026, 9, 17, 9))
        soon = refund_received(app, tenant)  # due Thu 17:00, warned from 15:24
        traveller.move_to(shanghai(2026, 9, 17, 16))
        login(client, tenant, agent)  # signed in again: a session idle for 8 hours ends
        views = {
            view: references(client.get(f"/t/{tenant.slug}/tickets?view={view}"))
            for view in ("breached", "breaching_soon", "open")
        }
        by_due = client.get(f"/t/{tenant.slug}/tickets?view=all&sort=due")
    reference = {number: f"RF-{number}" for number in (breached, answered, soon)}
    assert views["breached"] == [reference[breached]]
    assert views["breaching_soon"] == [reference[soon]]
    assert views["open"] == [reference[breached], reference[answered], reference[soon]]  # oldest first
    # The answered ticket's next deadline is its resolution, next Wednesday.
    assert references(by_due) == [reference[breached], reference[soon], reference[answered]]
    assert "Next due" in by_due.text
    rows = by_due.text.split("<tr")[2:]
    assert "Wed, Sep 16 18:00" in rows[0] and "Overdue" in rows[0]
    assert "Thu, Sep 17 17:00" in rows[1] and "Due soon" in rows[1]
    assert "Wed, Sep 23 10:00" in rows[2] and "Overdue" not in rows[2] and "Due soon" not in rows[2]


# --- what the customer sees --------------------------------------------------------------


def shown_time(moment: datetime) -> str:
    """A time as the customer's pages print it (day, date and 24-hour time, in Shanghai)."""
    return moment.astimezone(SHANGHAI).strftime("%a, %b %-d, %Y %H:%M")


def test_the_receipt_and_tracking_page_promise_the_deadlines_and_say_when_they_pause(
    app, client, make_tenant, make_user
):
    tenant = make_tenant()
    agent = make_user(tenant, "agent")
    with travel(WEDNESDAY_10AM) as traveller:
        response = send_form(client, tenant.slug, good_fields(purchase_date="2026-09-01"))
        assert response.status_code == 302
        receipt = client.get(response.headers["Location"]).text
        tracking_url = LINK_RE.search(receipt).group(1).replace("http://localhost", "")
        tracking = client.get(tracking_url).text
        for page in (receipt, tracking):
            assert "First answer by" in page and shown_time(shanghai(2026, 9, 16, 18)) in page
            assert "Decision on your request by" in page and shown_time(shanghai(2026, 9, 23, 10)) in page
            assert page.index("First answer by") < page.index("Decision on your request by")
        traveller.move_to(shanghai(2026, 9, 16, 11))
        change(app, tenant, 1001, tickets.request_information, "请提供充值记录。", user_id=agent.id)
        waiting = client.get(tracking_url).text
    assert "First answer by" not in waiting  # answered
    assert "Decision on your request by" in waiting
    assert "Paused while we wait for your answer" in waiting
    assert shown_time(shanghai(2026, 9, 23, 10)) not in waiting


# --- notifications -----------------------------------------------------------------------


def test_a_breach_reaches_the_assignees_notifications_until_they_are_marked_read(
    app, client, make_tenant, make_user
):
    tenant = make_tenant()
    manager = make_user(tenant, "manager")
    with travel(WEDNESDAY_10AM) as traveller:
        _tenant, agent = sign_in_at(client, make_tenant, make_user, "agent", tenant=tenant)
        number = refund_received(app, tenant)
        change(app, tenant, number, tickets.assign, agent.id, user_id=manager.id)
        url = f"/t/{tenant.slug}/notifications"
        before = client.get(url).text
        assert "No notifications." in before and "unread" not in before

        traveller.move_to(shanghai(2026, 9, 16, 18, 0, 30))
        with app.app_context():
            assert sweep.sweep().breached >= 1
        login(client, tenant, agent)  # signed in again: a session idle for 8 hours ends
        page = client.get(url).text
        assert "Deadline missed" in page and "First response" in page
        assert f'href="/t/{tenant.slug}/tickets/{number}">RF-{number}</a>' in page
        assert "Due Wed, Sep 16 18:00" in page
        badge = '<span class="badge text-bg-danger">1<span class="visually-hidden"> unread'
        assert f"Notifications</span> {badge}" in page
        # The count shows on every staff page, not only this one.
        assert '1<span class="visually-hidden"> unread' in client.get(f"/t/{tenant.slug}/tickets").text

        response = submit(client, f"{url}/read", {}, form_page=url)
        assert response.status_code == 302 and response.headers["Location"] == url
        after = client.get(url).text
    assert "Deadline missed" in after and "RF-1001" in after  # still listed, no longer new
    assert "unread" not in after and "list-group-item-warning" not in after
    read = audit_events(app, tenant, "notifications.read")
    assert [(event.subject_id, event.actor_id, event.data) for event in read] == [
        (str(agent.id), str(agent.id), {"count": 1})
    ]


def test_a_warning_about_a_deadline_paused_since_says_it_is_paused(app, client, make_tenant, make_user):
    tenant = make_tenant()
    with travel(WEDNESDAY_10AM) as traveller:
        _tenant, agent = sign_in_at(client, make_tenant, make_user, "agent", tenant=tenant)
        number = refund_received(app, tenant)
        change(app, tenant, number, tickets.assign, agent.id, user_id=agent.id)
        change(app, tenant, number, tickets.reply, "我们正在处理。", user_id=agent.id)
        # 80 % of the 45 h resolution: Wed 8 h, Thu, Fri, Mon 9 h each, then Tue 09:00-10:00.
        traveller.move_to(shanghai(2026, 9, 22, 10, 0, 30))
        with app.app_context():
            sweep.sweep()
        traveller.move_to(shanghai(2026, 9, 22, 11))
        change(app, tenant, number, tickets.request_information, "请提供账单。", user_id=agent.id)
        login(client, tenant, agent)  # signed in again: a session idle for 8 hours ends
        page = client.get(f"/t/{tenant.slug}/notifications").text
    item = page[page.index('<ul class="list-group">') :]
    assert "Deadline approaching" in item and "Resolution" in item
    assert "Paused since Tue, Sep 22 11:00" in item
    assert "Due </div>" not in item and "Due \n" not in item


def test_marking_read_needs_the_forms_token(client, signed_in):
    tenant, _agent = signed_in("agent")
    assert client.post(f"/t/{tenant.slug}/notifications/read", data={}).status_code == 400


def test_tickets_in_the_queue_are_not_changed_by_looking(app, client, signed_in):
    """Opening the pages records nothing about the clocks: only the sweep does."""
    with travel(WEDNESDAY_10AM) as traveller:
        tenant, _agent = signed_in("agent")
        number = refund_received(app, tenant)
        traveller.move_to(shanghai(2026, 9, 17, 10))
        client.get(f"/t/{tenant.slug}/tickets?view=breached")
        client.get(f"/t/{tenant.slug}/tickets/{number}")
    assert audit_events(app, tenant, "clock.breached") == []
    with acting_for(app, tenant) as session:
        assert session.scalars(select(Ticket.due_at)).one() == shanghai(2026, 9, 16, 18)


def test_the_home_page_counts_breached_and_breaching_tickets(app, client, signed_in):
    """The agent's start page says how many open tickets are past a deadline or close to
    one, linking to those views. First response: 8 business hours on Mon-Fri 09:00-18:00,
    warning at 80 % (6 h 24 min)."""
    with travel(WEDNESDAY_10AM):
        tenant, agent = signed_in("agent")
        refund_received(app, tenant)  # due Wed 18:00
    with travel(shanghai(2026, 9, 16, 11)):
        refund_received(app, tenant)  # due Thu 10:00, warning Wed 17:24
    with travel(shanghai(2026, 9, 17, 9)):
        refund_received(app, tenant)  # due Thu 17:00, warning Thu 15:24
    with travel(shanghai(2026, 9, 17, 9, 30)):
        login(client, tenant, agent)  # signed in again: a session idle for 8 hours ends
        page = client.get(f"/t/{tenant.slug}/").text
    assert re.search(
        r'view=breached">\s*<span[^>]*><span aria-hidden="true">⚠</span> 1</span><span>Breached', page
    )
    assert re.search(r'view=breaching_soon">\s*<span[^>]*><span aria-hidden="true">⏱</span> 1</span>', page)
