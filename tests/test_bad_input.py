"""Input no page can use gets a 4xx that says what is wrong, never a 500, and changes
nothing: the cases an outside probe found (issue 10, finding 4). PostgreSQL is where most
of them bit (a NUL in text, a number past an INTEGER or BIGINT column); the answers are
the same on SQLite."""

import re

import pytest
from sqlalchemy import func, select, update

from crm.audit.models import AuditEvent
from crm.customers.models import Customer
from crm.provisioning.models import TenantSettings
from crm.tickets.models import ThreadEntry, Ticket
from tests.conftest import CSRF_RE, acting_for
from tests.test_policies import published
from tests.test_portal import PDF, good_fields, send_form, submitted

CONTROL_CHARACTER = "invisible control character (such as NUL)"
NUMBER_TOO_LARGE = "A number in this address is too large."
HEADING_RE = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S)


def rows(app, tenant) -> dict[str, int]:
    """What a refused request must not have written."""
    with acting_for(app, tenant) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Ticket, ThreadEntry, Customer, AuditEvent)
        }


def heading(response) -> str:
    match = HEADING_RE.search(response.text)
    return match.group(1).strip() if match else ""


@pytest.fixture
def public_desk(app, make_tenant):
    """A tenant whose form takes as many submissions as a test sends."""
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(form_submissions_per_hour=10_000))
        session.commit()
    return tenant


# --- control characters ------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["name", "phone", "email", "account_ref", "description", "amount", "purchase_date", "reason", "currency"],
)
@pytest.mark.parametrize("character", ["\x00", "\x1b", "\x7f"])
def test_a_control_character_in_any_refund_form_field_is_refused_and_writes_nothing(
    app, client, public_desk, field, character
):
    before = rows(app, public_desk)
    response = send_form(client, public_desk.slug, good_fields(**{field: f"12{character}34"}))
    assert response.status_code == 400
    assert CONTROL_CHARACTER in heading(response)
    assert public_desk.name in response.text  # on the tenant's own page
    assert rows(app, public_desk) == before


def test_a_control_character_in_an_uploaded_file_name_is_refused(app, client, public_desk):
    before = rows(app, public_desk)
    response = send_form(client, public_desk.slug, good_fields(), files=[("receipt\x00.pdf", PDF)])
    assert response.status_code == 400 and CONTROL_CHARACTER in heading(response)
    assert rows(app, public_desk) == before


def test_tabs_and_line_and_page_breaks_in_a_message_are_ordinary_text(app, client, public_desk):
    description = "第一行\r\n\t第二行\x0b第三行\x0c🙂"  # \x0b: a line break pasted from Word
    fields = good_fields(description=description, name="O'Brien\u200b")
    assert send_form(client, public_desk.slug, fields).status_code == 302


@pytest.mark.parametrize("action", ["reply", "withdraw", "not-satisfied"])
def test_a_nul_on_the_tracking_page_is_refused_and_writes_nothing(app, client, make_tenant, action):
    tenant = make_tenant()
    submission = submitted(app, tenant)
    url = f"/t/{tenant.slug}/track/{submission.tracking_token}"
    csrf = CSRF_RE.search(client.get(url).text).group(1)
    before = rows(app, tenant)
    response = client.post(f"{url}/{action}", data={"csrf_token": csrf, "body": "see\x00this"})
    assert response.status_code == 400 and CONTROL_CHARACTER in heading(response)
    assert rows(app, tenant) == before


@pytest.mark.parametrize(
    "path",
    ["/t/{slug}%00/refund", "/t/{slug}/track/abc%00def", "/t/{slug}/policy%00", "/t/%00/login"],
)
def test_a_nul_in_the_address_is_a_400_before_anything_is_looked_up(client, make_tenant, path):
    tenant = make_tenant()
    response = client.get(path.format(slug=tenant.slug))
    assert response.status_code == 400 and CONTROL_CHARACTER in heading(response)


@pytest.mark.parametrize(
    "query",
    [
        "/tickets?q=a%00b",
        "/audit?actor=a%00b",
        "/audit?subject_id=1%00",
        "/audit?action=x%00",
        "/tickets?a%00=1",
    ],
)
def test_a_nul_in_a_staff_search_or_filter_is_a_400(client, signed_in, query):
    tenant, _ = signed_in("admin")
    response = client.get(f"/t/{tenant.slug}{query}")
    assert response.status_code == 400 and CONTROL_CHARACTER in heading(response)


def test_a_nul_in_the_login_form_is_refused_and_no_sign_in_is_recorded(app, client, make_tenant, make_user):
    tenant = make_tenant()
    user = make_user(tenant, "agent")
    csrf = CSRF_RE.search(client.get(f"/t/{tenant.slug}/login").text).group(1)
    before = rows(app, tenant)
    response = client.post(
        f"/t/{tenant.slug}/login", data={"csrf_token": csrf, "email": user.email + "\x00", "password": "x"}
    )
    assert response.status_code == 400 and CONTROL_CHARACTER in heading(response)
    assert rows(app, tenant) == before


# --- numbers past the database's columns ---------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/policy/2147483648",  # a policy number is a 32-bit INTEGER column
        "/policy/18446744073709551616",
        "/refund/receipt/9223372036854775808",  # ticket numbers and ids are BIGINT
    ],
)
def test_a_number_past_its_column_in_a_public_address_is_a_404(client, make_tenant, path):
    tenant = make_tenant()
    response = client.get(f"/t/{tenant.slug}{path}")
    assert response.status_code == 404 and heading(response) == "This page does not exist."


@pytest.mark.parametrize(
    "path",
    [
        "/admin/policies/2147483648",
        "/tickets/9223372036854775808",
        "/tickets/1001/files/9223372036854775808",
        "/admin/users/9223372036854775808",
        "/canned-replies/9223372036854775808",
    ],
)
def test_a_number_past_its_column_in_a_staff_address_is_a_404(client, signed_in, path):
    tenant, _ = signed_in("admin")
    response = client.get(f"/t/{tenant.slug}{path}")
    assert response.status_code == 404 and heading(response) == "This page does not exist."


def test_publishing_a_policy_number_past_its_column_is_a_404_and_publishes_nothing(app, client, signed_in):
    tenant, _ = signed_in("admin")
    page = client.get(f"/t/{tenant.slug}/admin/policies")
    before = rows(app, tenant)
    response = client.post(
        f"/t/{tenant.slug}/admin/policies/2147483648/publish",
        data={"csrf_token": CSRF_RE.search(page.text).group(1)},
    )
    assert response.status_code == 404
    assert rows(app, tenant) == before


@pytest.mark.parametrize(
    "query",
    [
        "/admin/policies/compare?a=2147483648&b=1",
        "/admin/policies/compare?a=1&b=-2147483649",
        "/admin/policies/compare?a=99999999999999999999&b=1",
        "/admin/outbox?before=9223372036854775808",
        "/tickets/1001?canned=99999999999999999999",
    ],
)
def test_a_number_past_its_column_in_a_query_is_a_400_that_says_so(app, client, signed_in, query):
    tenant, _ = signed_in("admin")
    submitted(app, tenant)  # ticket 1001
    published(app, tenant)
    response = client.get(f"/t/{tenant.slug}{query}")
    assert response.status_code == 400 and heading(response) == NUMBER_TOO_LARGE


def test_numbers_at_the_edge_of_their_columns_are_still_read(app, client, signed_in):
    tenant, _ = signed_in("admin")
    published(app, tenant)
    assert client.get(f"/t/{tenant.slug}/policy/2147483647").status_code == 404  # no such version
    assert client.get(f"/t/{tenant.slug}/admin/outbox?before=9223372036854775807").status_code == 200
    compare = client.get(f"/t/{tenant.slug}/admin/policies/compare?a=2147483647&b=1")
    assert compare.status_code == 302  # "Choose two versions to compare."


# --- dates on the audit page ----------------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["since=0001-01-01", "until=9999-12-31", "since=1899-12-31", "until=2201-01-01"]
)
def test_an_audit_filter_date_outside_1900_to_2200_is_refused_beside_its_field(client, signed_in, query):
    tenant, _ = signed_in("admin")
    response = client.get(f"/t/{tenant.slug}/audit?{query}")
    assert response.status_code == 400
    assert "Enter a date between 1900 and 2200." in response.text


def test_the_audit_filter_takes_the_whole_range(client, signed_in):
    tenant, _ = signed_in("admin")
    response = client.get(f"/t/{tenant.slug}/audit?since=1900-01-01&until=2200-12-31")
    assert response.status_code == 200
    assert "auth.login" in response.text  # the admin's own sign-in is in range


def test_an_audit_page_link_past_the_column_says_to_start_again(client, signed_in):
    tenant, _ = signed_in("admin")
    response = client.get(f"/t/{tenant.slug}/audit?before=9223372036854775808")
    assert response.status_code == 400
    assert "This page link is not valid; start from the first page." in response.text


# --- amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount, message",
    [
        ("1E+999999999", "The amount is too large."),
        ("-1E+999999999", "The amount cannot be negative."),
        ("1E-999999999", "Use at most 2 decimal places."),
        ("9" * 17, "The amount is too large."),
        ("NaN", "Enter an amount such as 199.00."),
        ("sNaN", "Enter an amount such as 199.00."),
        ("-Infinity", "Enter an amount such as 199.00."),
    ],
)
def test_an_amount_no_desk_could_hold_is_refused_beside_its_field(app, client, public_desk, amount, message):
    before = rows(app, public_desk)
    response = send_form(client, public_desk.slug, good_fields(amount=amount))
    assert 400 <= response.status_code < 500
    assert message in response.text
    assert rows(app, public_desk) == before


# --- bodies past the limit -----------------------------------------------------------------


def test_a_body_past_the_limit_gets_the_413_page(app, client, signed_in, make_tenant):
    body = b"description=" + b"x" * (61 * 2**20)
    public = make_tenant()
    response = client.post(
        f"/t/{public.slug}/refund", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413 and heading(response) == "What you sent is too large."
    assert public.name in response.text  # the tenant's page, language switch and all
    tenant, _ = signed_in("admin")
    response = client.post(
        f"/t/{tenant.slug}/tickets/new", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413 and heading(response) == "What you sent is too large."


def test_the_refusal_is_in_the_pages_language(client, make_tenant):
    tenant = make_tenant()
    response = client.get(f"/t/{tenant.slug}/track/a%00b", headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 400 and "不可见控制字符" in response.text
