"""Tenant isolation: URLs, the ORM guard, and the database's own composite keys."""

import re

import pytest
from sqlalchemy import delete, func, insert, literal, select, text, update
from sqlalchemy.exc import IntegrityError, NoResultFound

from crm.audit import checkpoints
from crm.audit.service import Actor
from crm.auth.models import User
from crm.calls import service as calls
from crm.columns import utcnow
from crm.exports.models import ExportStatus, TenantExportRun
from crm.extensions import db
from crm.files.models import Attachment
from crm.leads import intake, pipeline
from crm.notify.models import OutboxMessage, OutboxStatus
from crm.sla import calendars
from crm.tickets import canned
from crm.tickets import service as tickets
from crm.tickets.models import SavedView
from crm.webhooks.models import WebhookEndpoint
from tenants import TenantContextError, tenant_context
from tests.conftest import acting_for, login

# Sign-in, and the refund policy every customer may read.
PUBLIC_ENDPOINTS = {
    "auth.login",
    "auth.forgot_password",
    "auth.reset_password",  # a link's token, of this tenant only: tests/test_password_reset.py
    "policies.in_force",
    "policies.published",
    "policies.history",
}


def staff_urls(app, **values) -> list[str]:
    """Every GET page under /t/<tenant>/ but the public ones (sign-in, the customer's
    portal), with the URL's other parts filled from ``values`` (ids of the other
    tenant's objects)."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "tenant" not in rule.arguments or "GET" not in rule.methods:
            continue
        # The API answers keys, not sessions: tests/test_api.py tries another tenant's key.
        if rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint.startswith(
            ("portal.", "leads_public.", "api.")
        ):
            continue
        missing = rule.arguments - {"tenant"} - values.keys()
        assert not missing, f"give test values for {missing} of {rule.rule}"
        path = rule.rule
        for name in rule.arguments - {"tenant"}:
            path = re.sub(rf"<(?:\w+:)?{name}>", str(values[name]), path)
        urls.append(path.replace("<tenant>", "{slug}"))
    assert len(urls) >= 5, urls
    return urls


def ticket_url_values(app, tenant) -> dict:
    """A ticket of ``tenant`` with a file, a canned reply, a calendar and a signed
    checkpoint: values for staff URLs."""
    with acting_for(app, tenant) as session:
        ticket = tickets.submit_refund_request(
            tickets.RefundRequest(
                customer=tickets.CustomerDetails(name="Li Lei", phone="13800138000"),
                reason="other",
                description="Refund please.",
                uploads=[tickets.Upload("note.txt", b"balance 100")],
            ),
            nonce="tenancy",
            ip=None,
        ).ticket
        reply = canned.create_canned(title="Thanks", body="Thank you.", actor=Actor.operator("test"))
        calendar = calendars.create(f"Office of {tenant.slug}", "Asia/Shanghai", actor=Actor.operator("test"))
        session.flush()
        signed, _ = checkpoints.write_checkpoint(actor=Actor.operator("test"))
        lead = intake.receive(
            intake.LeadDetails(name="Han Meimei", phone="13900139000"),
            source="staff",
            actor=Actor.operator("test"),
            ip=None,
            proofs=[(None, True, "signed form 1")],
        ).lead
        endpoint = WebhookEndpoint(
            url="https://hooks.example.test/x", events=["ticket.created"], secret="whsec_x"
        )
        session.add(endpoint)
        run = TenantExportRun(requested_by_id=0, status=ExportStatus.DONE, total=1, done=1)
        session.add(run)
        dialled = calls.receive(
            calls.DialerCall("outbound", "+862161234567", "+8613800138000", utcnow(), 60, "answered"),
            actor=Actor.operator("test"),
            api_key_id=None,
        )
        failed_mail = OutboxMessage(
            to_address="lilei@example.test", subject="s", body="b", locale="en", status=OutboxStatus.FAILED
        )
        session.add(failed_mail)
        session.flush()
        saved = SavedView(
            user_id=session.scalars(select(User.id)).first(), name="Mine", params={"view": "mine"}
        )
        session.add(saved)
        session.flush()
        values = {
            "run_id": run.id,
            "tree_size": signed.tree_size,
            "number": ticket.number,
            "attachment_id": session.scalars(
                select(Attachment.id).where(Attachment.ticket_id == ticket.id)
            ).one(),
            "reply_id": reply.id,
            "name": calendar.key,
            "reference": lead.reference,
            "activity_id": pipeline.activities_of(lead)[0].id,
            "endpoint_id": endpoint.id,
            "call_id": dialled.id,
            "message_id": failed_mail.id,
            "view_id": saved.id,
            "customer_id": ticket.customer_id,
        }
        session.commit()
        return values


def test_user_of_one_tenant_never_sees_another_tenants_staff_pages(app, client, make_tenant, make_user):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    admin_a = make_user(tenant_a, "admin")
    admin_b = make_user(tenant_b, "admin")
    assert login(client, tenant_a, admin_a).status_code == 302

    for url in staff_urls(app, user_id=admin_b.id, **ticket_url_values(app, tenant_b)):
        response = client.get(url.format(slug=tenant_b.slug))
        assert response.status_code in (302, 404), url
        if response.status_code == 302:
            assert response.headers["Location"].startswith(f"/t/{tenant_b.slug}/login"), url
        assert admin_b.email not in response.text, url
        assert tenant_b.name not in response.text or response.status_code == 302, url


def test_anonymous_visitor_gets_login_or_404_on_every_staff_page(app, client, make_tenant, make_user):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    for url in staff_urls(app, user_id=admin.id, **ticket_url_values(app, tenant)):
        response = client.get(url.format(slug=tenant.slug))
        assert response.status_code in (302, 404), url
        assert admin.email not in response.text


def test_another_tenants_user_id_is_404_not_403(client, signed_in, make_tenant, make_user):
    tenant_a, _admin = signed_in("admin")
    other = make_user(make_tenant(), "agent")
    response = client.get(f"/t/{tenant_a.slug}/admin/users/{other.id}")
    assert response.status_code == 404
    assert other.email not in response.text


@pytest.mark.parametrize("path", ["login", "", "audit", "admin/users"])
def test_unknown_tenant_is_404(client, path):
    assert client.get(f"/t/no-such-tenant/{path}").status_code == 404


def test_suspended_tenant_answers_404_and_its_users_are_locked_out(client, runner, make_tenant, make_user):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    assert login(client, tenant, admin).status_code == 302
    result = runner.invoke(args=["tenants", "suspend", tenant.slug])
    assert result.exit_code == 0, result.output
    assert client.get(f"/t/{tenant.slug}/").status_code == 404
    assert client.get(f"/t/{tenant.slug}/login").status_code == 404


def test_queries_without_a_tenant_see_nothing(app, make_tenant, make_user):
    tenant = make_tenant()
    make_user(tenant, "agent")
    with acting_for(app, None) as session:
        assert session.scalars(select(User)).all() == []
        assert session.scalar(select(func.count()).select_from(User)) == 0
        assert session.execute(update(User).values(display_name="x")).rowcount == 0
        assert session.execute(delete(User)).rowcount == 0
        session.rollback()
    with acting_for(app, tenant) as session:
        assert len(session.scalars(select(User)).all()) == 1


def test_queries_in_one_tenant_see_only_its_rows(app, make_tenant, make_user):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    user_a = make_user(tenant_a)
    make_user(tenant_b)
    with acting_for(app, tenant_a) as session:
        assert [u.id for u in session.scalars(select(User))] == [user_a.id]
        session.execute(update(User).values(display_name="renamed"))
        session.commit()
    with acting_for(app, tenant_b) as session:
        assert all(u.display_name != "renamed" for u in session.scalars(select(User)))


def _user_row(tenant_id: int, email: str) -> dict:
    return {
        "tenant_id": tenant_id,
        "email": email,
        "display_name": "x",
        "role": "agent",
        "password_hash": "x",
        "active": True,
        "session_token": "t" * 32,
    }


def test_insert_stamped_with_another_tenants_id_is_refused(app, make_tenant):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    with acting_for(app, tenant_a) as session:
        session.add(User(**_user_row(tenant_b.id, "intruder@example.test")))
        with pytest.raises(TenantContextError):
            session.flush()
        session.rollback()
        with pytest.raises(TenantContextError):
            session.execute(insert(User), [_user_row(tenant_b.id, "bulk@example.test")])
        session.rollback()
    with acting_for(app, None) as session:
        session.add(User(**_user_row(tenant_a.id, "nobody@example.test")))
        with pytest.raises(TenantContextError):
            session.flush()
        session.rollback()


def test_moving_a_row_to_another_tenant_is_refused(app, make_tenant, make_user):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    user = make_user(tenant_a)
    with acting_for(app, tenant_a) as session:
        row = session.get(User, user.id)
        row.tenant_id = tenant_b.id
        with pytest.raises(TenantContextError):
            session.flush()
        session.rollback()
    # Nor by taking a kept object into the other tenant's context and stamping it there.
    with app.app_context():
        with tenant_context(tenant_a):
            kept = db.session.get(User, user.id)
        with tenant_context(tenant_b):
            kept.tenant_id = tenant_b.id
            with pytest.raises(TenantContextError):
                db.session.flush()
            db.session.rollback()
    assert _tenant_of(app, tenant_a, user.id) == user.email


def test_database_refuses_a_reference_to_another_tenants_row_even_in_raw_sql(app, make_tenant, make_user):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    creator_b = make_user(tenant_b, "admin")
    creator_a = make_user(tenant_a, "admin")
    statement = text(
        "INSERT INTO users (tenant_id, email, display_name, role, password_hash, active,"
        " session_token, created_by_id, created_at)"
        " VALUES (:tenant, :email, 'x', 'agent', 'x', :active, :token, :creator, :now)"
    )
    params = {"tenant": tenant_a.id, "active": True, "token": "t" * 32, "now": "2026-01-01 00:00:00"}
    with acting_for(app, tenant_a) as session:
        with pytest.raises(IntegrityError):
            session.execute(statement, {**params, "email": "cross@example.test", "creator": creator_b.id})
        session.rollback()
        # The same statement pointing inside the tenant is accepted: the key is what refused it.
        session.execute(statement, {**params, "email": "same@example.test", "creator": creator_a.id})
        session.rollback()


# --- one session across tenants, as the SLA sweep uses it ------------------------------


@pytest.mark.parametrize("commit_between", [False, True], ids=["same-transaction", "after-commit"])
def test_get_never_returns_another_tenants_object_from_the_identity_map(
    app, make_tenant, make_user, commit_between
):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    user_a = make_user(tenant_a)
    with app.app_context():
        with tenant_context(tenant_a):
            kept = db.session.get(User, user_a.id)  # held, so the identity map keeps it
            assert kept.email == user_a.email
            if commit_between:
                db.session.commit()
        with tenant_context(tenant_b):
            assert db.session.get(User, user_a.id) is None
            with pytest.raises(NoResultFound):
                db.session.get_one(User, user_a.id)
        with tenant_context(None):
            assert db.session.get(User, user_a.id) is None
        with tenant_context(tenant_a):
            assert db.session.get(User, user_a.id).email == user_a.email


def test_a_kept_object_of_another_tenant_lazy_loads_nothing_of_it(app, make_tenant):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    with app.app_context():
        with tenant_context(tenant_a):
            ticket = tickets.submit_refund_request(
                tickets.RefundRequest(
                    customer=tickets.CustomerDetails(name="Li Lei", phone="13800138000"),
                    reason="other",
                    description="Refund please.",
                ),
                nonce="lazy-load",
                ip=None,
            ).ticket
            customer = ticket.customer  # held, so the identity map keeps it
            assert customer.name == "Li Lei"
            db.session.commit()
            customer_id = ticket.customer_id
        with tenant_context(tenant_b):
            db.session.expire(ticket, ["customer"])
            assert ticket.customer is None
        with tenant_context(tenant_a):
            assert db.session.get(type(customer), customer_id).name == "Li Lei"


def test_merge_onto_another_tenants_object_is_refused(app, make_tenant, make_user):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    user_a = make_user(tenant_a)
    with app.app_context():
        with tenant_context(tenant_a):
            kept = db.session.get(User, user_a.id)
        with tenant_context(tenant_b), pytest.raises(TenantContextError):
            db.session.merge(User(id=user_a.id, display_name="taken over"))
        db.session.rollback()
        with tenant_context(tenant_a):
            assert kept.email == user_a.email
    with acting_for(app, tenant_a) as session:
        assert session.get(User, user_a.id).display_name != "taken over"


# --- bulk statements -----------------------------------------------------------------


def _tenant_of(app, tenant, user_id: int) -> str | None:
    """The email of ``user_id`` as ``tenant`` sees it (None: not one of its users)."""
    with acting_for(app, tenant) as session:
        return session.scalar(select(User.email).where(User.id == user_id))


@pytest.mark.parametrize("synchronize_session", ["auto", "evaluate", "fetch", False])
@pytest.mark.parametrize("spelling", ["keyword", "attribute", "column", "parameters"])
def test_bulk_update_cannot_set_a_tenant_id(app, make_tenant, make_user, synchronize_session, spelling):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    user_a = make_user(tenant_a)
    statement = {
        "keyword": update(User).values(tenant_id=tenant_b.id),
        "attribute": update(User).values({User.tenant_id: tenant_b.id}),
        "column": update(User).values({User.__table__.c.tenant_id: tenant_b.id}),
        "parameters": update(User).where(User.id == user_a.id),
    }[spelling]
    parameters = {"tenant_id": tenant_b.id} if spelling == "parameters" else None
    with acting_for(app, tenant_a) as session:
        with pytest.raises(TenantContextError):
            session.execute(
                statement, parameters, execution_options={"synchronize_session": synchronize_session}
            )
            session.commit()
        session.rollback()
        # Even to its own tenant: an UPDATE never names the tenant.
        with pytest.raises(TenantContextError):
            session.execute(update(User).values(tenant_id=tenant_a.id))
        session.rollback()
    assert _tenant_of(app, tenant_a, user_a.id) == user_a.email
    assert _tenant_of(app, tenant_b, user_a.id) is None


def test_bulk_update_by_primary_key_reaches_only_the_tenants_rows(app, make_tenant, make_user):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    user_a, user_b = make_user(tenant_a), make_user(tenant_b)
    with acting_for(app, tenant_b) as session:
        with pytest.raises(TenantContextError):
            session.execute(update(User), [{"id": user_a.id, "tenant_id": tenant_b.id}])
        session.rollback()
        kept = session.get(User, user_b.id)
        session.execute(
            update(User),
            [
                {"id": user_a.id, "display_name": "renamed by b"},
                {"id": user_b.id, "display_name": "renamed by b"},
            ],
        )
        assert kept.display_name == "renamed by b"  # the session's own object follows
        session.commit()
    with acting_for(app, tenant_a) as session:
        assert session.get(User, user_a.id).display_name != "renamed by b"
    with acting_for(app, tenant_b) as session:
        assert session.get(User, user_b.id).display_name == "renamed by b"


def test_orm_insert_values_are_checked_like_bulk_rows(app, make_tenant):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    with acting_for(app, tenant_a) as session:
        for statement in (
            insert(User).values(**_user_row(tenant_b.id, "values@example.test")),
            insert(User).values(
                [_user_row(tenant_a.id, "m1@example.test"), _user_row(tenant_b.id, "m2@example.test")]
            ),
            insert(User).from_select(
                ["tenant_id", "email", "display_name", "role", "password_hash", "active", "session_token"],
                select(
                    literal(tenant_b.id),
                    User.email + "x",
                    User.display_name,
                    User.role,
                    User.password_hash,
                    User.active,
                    User.session_token,
                ),
            ),
        ):
            with pytest.raises(TenantContextError):
                session.execute(statement)
            session.rollback()
        # Stamped with the tenant in context, the same statement goes through.
        session.execute(insert(User).values(**_user_row(tenant_a.id, "own@example.test")))
        session.commit()
        assert session.scalar(select(func.count()).select_from(User)) == 1
    with acting_for(app, tenant_b) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize(
    "statement",
    [
        lambda tenant: select(User.__table__),
        lambda tenant: update(User.__table__).values(display_name="core"),
        lambda tenant: delete(User.__table__),
        lambda tenant: insert(User.__table__).values(**_user_row(tenant.id, "core@example.test")),
    ],
    ids=["select", "update", "delete", "insert"],
)
def test_core_statement_on_a_tenant_table_through_the_session_is_refused(
    app, make_tenant, make_user, statement
):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    make_user(tenant_a)
    with acting_for(app, tenant_b) as session:
        with pytest.raises(TenantContextError):
            session.execute(statement(tenant_a))
        session.rollback()
