"""An inspector in a real browser: an auditor limited to one ticket opens it, downloads
its case file, and the verify.py inside the file checks it on the inspector's side.
The ticket outside the scope is a 404, like another tenant's."""

from sqlalchemy import select

from crm.auth.models import User
from crm.tickets import service as tickets
from tests.browser import DESK, assert_fits_the_screen, needs_browser, shoot
from tests.conftest import PASSWORD, acting_for, run_bundled_verifier, unique
from tests.test_portal import PNG
from tests.test_ticket_service import refund_request

pytestmark = needs_browser


def filed(app, tenant) -> int:
    request = refund_request(uploads=[tickets.Upload("账单.png", PNG)])
    with acting_for(app, tenant) as session:
        number = tickets.submit_refund_request(request, nonce=unique("n"), ip=None).ticket.number
        session.commit()
    return number


def test_an_auditor_with_a_narrow_scope_downloads_a_case_file_that_verifies(
    app, live_server, browser, make_tenant, make_user, tmp_path
):
    tenant = make_tenant()
    inside, outside = filed(app, tenant), filed(app, tenant)
    auditor = make_user(tenant, "auditor")
    with acting_for(app, tenant) as session:
        user = session.scalars(select(User).where(User.id == auditor.id)).one()
        ticket = tickets.ticket_by_number(inside)
        user.scope_kind, user.scope_ticket_ids = "tickets", [ticket.id]
        session.commit()

    page = browser.new_page(viewport=DESK, accept_downloads=True)
    page.goto(f"{live_server}/t/{tenant.slug}/login")
    page.fill("input[name=email]", auditor.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form:has(input[name=password]) button[type=submit]")

    assert page.goto(f"{live_server}/t/{tenant.slug}/tickets/{outside}").status == 404
    page.goto(f"{live_server}/t/{tenant.slug}/tickets/{inside}")
    page.wait_for_load_state("networkidle")  # every icon served before the page moves on
    assert_fits_the_screen(page)
    shoot(page, "case-file-auditor-ticket")
    with page.expect_download() as download_info:
        page.click("text=Case file for an inspector (ZIP)")
    download = download_info.value
    assert download.suggested_filename == f"RF-{inside}-case-file.zip"
    bundle = tmp_path / download.suggested_filename
    download.save_as(bundle)
    page.wait_for_load_state("networkidle")
    page.close()

    checked = run_bundled_verifier(bundle, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ticket RF-{inside}" in checked.stdout and "OK: everything above holds" in checked.stdout
