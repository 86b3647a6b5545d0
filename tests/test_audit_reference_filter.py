"""A case is found in the audit trail by its reference as people write it (issue 11,
section 6): "RF-1002", "rf 1002", "#1002" filter the trail to that ticket's events; an
internal id still works; an unknown reference, or another tenant's, says so."""

import re

import pytest

from crm.auth.models import User
from crm.tickets import service as tickets
from tests.conftest import acting_for, unique
from tests.test_refunds import text_of
from tests.test_ticket_service import refund_request


def two_tickets(app, tenant, user) -> dict[str, int]:
    """RF-1001 and RF-1002, the second assigned: reference -> internal id."""
    ids = {}
    with acting_for(app, tenant) as session:
        for _ in range(2):
            ticket = tickets.submit_refund_request(refund_request(), nonce=unique("n"), ip=None).ticket
            ids[ticket.reference] = ticket.id
        second = tickets.ticket_by_number(1002)
        tickets.assign(second, user.id, user=session.get(User, user.id), ip=None)
        session.commit()
    return ids


def subjects_listed(page: str) -> set[str]:
    """The Subject column of the audit table."""
    rows = re.findall(r"<tr>\s*<td class=\"mono\">\d+</td>(.*?)</tr>", page, re.S)
    return {text_of(re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[3]) for row in rows}


@pytest.mark.parametrize("typed", ["RF-1002", "rf 1002", "#1002", " Rf1002 "])
def test_the_trail_filters_by_a_tickets_reference_as_typed(app, client, signed_in, typed):
    tenant, admin = signed_in("admin")
    ids = two_tickets(app, tenant, admin)

    page = client.get(f"/t/{tenant.slug}/audit", query_string={"subject_id": typed})

    assert page.status_code == 200
    assert subjects_listed(page.text) == {f"ticket:{ids['RF-1002']}"}
    assert "ticket.assigned" in page.text and "ticket.created" in page.text


def test_an_internal_id_still_filters_as_before(app, client, signed_in):
    tenant, admin = signed_in("admin")
    ids = two_tickets(app, tenant, admin)
    page = client.get(
        f"/t/{tenant.slug}/audit", query_string={"subject_type": "ticket", "subject_id": str(ids["RF-1001"])}
    )
    assert page.status_code == 200
    assert subjects_listed(page.text) == {f"ticket:{ids['RF-1001']}"}


def test_an_unknown_or_another_tenants_reference_is_refused_with_a_message(
    app, client, make_tenant, signed_in
):
    tenant, admin = signed_in("admin")
    two_tickets(app, tenant, admin)
    other = make_tenant()
    with acting_for(app, other) as session:
        for _ in range(3):
            tickets.submit_refund_request(refund_request(), nonce=unique("n"), ip=None)
        session.commit()

    for typed in ("RF-1003", "RF-9999"):  # RF-1003 exists only at the other tenant
        page = client.get(f"/t/{tenant.slug}/audit", query_string={"subject_id": typed})
        assert page.status_code == 400
        assert f"No ticket has the reference {typed}." in text_of(page.text)

    mismatch = client.get(
        f"/t/{tenant.slug}/audit", query_string={"subject_type": "user", "subject_id": "RF-1001"}
    )
    assert mismatch.status_code == 400
    assert "A reference names a ticket" in text_of(mismatch.text)


def test_the_reference_filter_speaks_chinese(app, client, signed_in):
    tenant, _admin = signed_in("admin")
    page = client.get(
        f"/t/{tenant.slug}/audit",
        query_string={"subject_id": "RF-4242"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert page.status_code == 400
    assert "没有编号为 RF-4242 的工单。" in text_of(page.text)
    unfiltered = client.get(f"/t/{tenant.slug}/audit", headers={"Accept-Language": "zh-CN"})
    assert "内部编号，或工单编号（如 RF-1009）" in text_of(unfiltered.text)  # the field's hint
