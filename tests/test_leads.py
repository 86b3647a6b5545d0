"""Leads: the hosted free-trial form, its receipt and promise, duplicates, consent proof,
the pipeline's calls, stages and round robin, the do-not-contact list as it applies to
leads, and the first-contact clock on the business calendar."""

import re

import pytest
from sqlalchemy import func, select

from crm.audit.models import AuditEvent
from crm.audit.service import Actor
from crm.auth.models import User
from crm.dnc import service as dnc
from crm.leads import intake, pipeline
from crm.leads.models import Consent, Lead, LeadRequest
from crm.sla.models import Clock, ClockState, Metric
from tests import test_sla
from tests.conftest import CSRF_RE, acting_for, login, submit
from tests.test_sla import run_sweep, shanghai, travel

TOKEN_RE = re.compile(r'name="submission_token" type="hidden" value="([^"]+)"')
OPERATOR = Actor.operator("test")
desk = test_sla.desk  # a Shanghai desk that closes for lunch, one of each kind of staff


def trial_tokens(client, slug: str, query: str = "") -> dict:
    page = client.get(f"/t/{slug}/trial{query}")
    assert page.status_code == 200
    fields = {
        "csrf_token": CSRF_RE.search(page.text).group(1),
        "submission_token": TOKEN_RE.search(page.text).group(1),
    }
    for name in ("utm_source", "utm_medium", "utm_campaign"):
        found = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', page.text)
        fields[name] = found.group(1) if found else ""
    return fields


def trial_fields(**overrides) -> dict:
    return {
        "name": "韩梅梅",
        "company": "梅梅外呼科技",
        "phone": "13900139000",
        "email": "meimei@example.test",
        "need": "想试用 20 个坐席的外呼系统",
        "consent_contact": "y",
        **overrides,
    }


def send_trial(client, slug: str, fields: dict, tokens: dict | None = None, query: str = ""):
    return client.post(f"/t/{slug}/trial", data={**(tokens or trial_tokens(client, slug, query)), **fields})


def leads_of(app, tenant) -> list[Lead]:
    with acting_for(app, tenant) as session:
        leads = list(session.scalars(select(Lead).order_by(Lead.id)))
        session.expunge_all()
        return leads


def events(app, tenant, action: str) -> list[AuditEvent]:
    with acting_for(app, tenant) as session:
        found = list(
            session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))
        )
        session.expunge_all()
        return found


def take_leads(app, tenant, *users) -> None:
    with acting_for(app, tenant) as session:
        for user in users:
            session.get(User, user.id).takes_leads = True
        session.commit()


# --- the form ---------------------------------------------------------------------------------


def test_the_trial_form_makes_a_lead_with_a_reference_and_a_promise_in_business_hours(app, client, desk):
    """Wednesday 17:00 in Shanghai, desk open 09:00–12:00 and 13:30–18:00: 180 business
    minutes are one hour today and two tomorrow morning, so "by Thursday 11:00"."""
    with travel(shanghai(2026, 9, 16, 17, 0)):
        response = send_trial(
            client, desk.tenant.slug, trial_fields(), query="?utm_source=baidu&utm_campaign=autumn"
        )
        assert response.status_code == 302
        receipt = client.get(response.headers["Location"])
    assert receipt.status_code == 200
    assert "LD-1001" in receipt.text
    promise = re.search(r'id="promise">([^<]+)<', receipt.text).group(1)
    assert "11:00" in promise and ("Thu" in promise or "周四" in promise)
    [lead] = leads_of(app, desk.tenant)
    assert (lead.reference, lead.stage, lead.phone) == ("LD-1001", "new", "+8613900139000")
    assert (lead.utm_source, lead.utm_campaign) == ("baidu", "autumn")
    assert lead.first_contact_due_at == shanghai(2026, 9, 17, 11, 0)
    # The stop link is on the receipt.
    assert 'id="stop-link"' in receipt.text


def test_each_box_is_kept_as_proof_with_its_exact_text_version_and_digest(app, client, make_tenant):
    tenant = make_tenant()
    page = client.get(f"/t/{tenant.slug}/trial")
    send_trial(client, tenant.slug, trial_fields(consent_marketing=""))
    with acting_for(app, tenant) as session:
        proofs = list(session.scalars(select(Consent).order_by(Consent.id)))
        assert [(p.purpose, p.given) for p in proofs] == [("contact", True), ("marketing", False)]
        for proof in proofs:
            assert proof.text in page.text  # exactly what the form showed
            assert proof.text_version == "1" and len(proof.text_sha256) == 64
            assert proof.channel == "web_form" and proof.phone == "+8613900139000"
            assert (proof.retain_until - proof.recorded_at).days >= 153
        lead = session.scalars(select(Lead)).one()
        assert lead.contact_consent_at is not None and lead.marketing_consent is False
    [created] = events(app, tenant, "lead.created")
    assert "13900139000" not in str(created.data)  # digests, not personal data
    assert [c["purpose"] for c in created.data["consents"]] == ["contact", "marketing"]


def test_the_contact_box_is_required_and_nothing_is_made_without_it(app, client, make_tenant):
    tenant = make_tenant()
    response = send_trial(client, tenant.slug, trial_fields(consent_contact=""))
    assert response.status_code == 400
    assert "Tick this box" in response.text
    assert leads_of(app, tenant) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "x" * 201),
        ("company", "x" * 201),
        ("phone", "not a phone"),
        ("email", "nobody@"),
        ("need", "x" * 5001),
        ("utm_source", "x" * 101),
    ],
)
def test_bad_input_is_refused_beside_its_field_and_makes_nothing(app, client, make_tenant, field, value):
    tenant = make_tenant()
    response = send_trial(client, tenant.slug, trial_fields(**{field: value}))
    assert response.status_code == 400
    assert leads_of(app, tenant) == []


def test_a_double_submit_makes_one_lead_and_the_honeypot_none(app, client, make_tenant):
    tenant = make_tenant()
    tokens = trial_tokens(client, tenant.slug)
    first = send_trial(client, tenant.slug, trial_fields(), tokens=tokens)
    second = send_trial(client, tenant.slug, trial_fields(), tokens=tokens)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert len(leads_of(app, tenant)) == 1
    bot = send_trial(client, tenant.slug, trial_fields(phone="13700137000", website="http://spam"))
    assert bot.status_code == 400
    assert len(leads_of(app, tenant)) == 1


def test_a_token_of_another_tenant_or_the_refund_form_is_refused(app, client, make_tenant):
    tenant, other = make_tenant(), make_tenant()
    tokens = trial_tokens(client, other.slug)
    response = send_trial(client, tenant.slug, trial_fields(), tokens=tokens)
    assert response.status_code == 400
    assert leads_of(app, tenant) == [] and leads_of(app, other) == []


def test_a_new_request_from_a_phone_on_an_open_lead_joins_it(app, client, make_tenant):
    tenant = make_tenant()
    send_trial(client, tenant.slug, trial_fields())
    again = send_trial(
        client, tenant.slug, trial_fields(name="韩梅梅", phone="+86 139 0013 9000", need="再问一次")
    )
    assert again.status_code == 302
    [lead] = leads_of(app, tenant)
    with acting_for(app, tenant) as session:
        assert session.scalar(select(func.count()).select_from(LeadRequest)) == 2
    assert len(events(app, tenant, "lead.request_joined")) == 1
    assert lead.reference == "LD-1001"


def test_the_per_address_limit_answers_429(app, client, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        from crm.provisioning.models import TenantSettings

        session.scalars(select(TenantSettings)).one().form_submissions_per_hour = 2
        session.commit()
    for n in range(2):
        assert send_trial(client, tenant.slug, trial_fields(phone=f"1390013900{n}")).status_code == 302
    refused = send_trial(client, tenant.slug, trial_fields(phone="13900139009"))
    assert refused.status_code == 429
    assert len(leads_of(app, tenant)) == 2


def test_the_receipt_is_only_for_the_browser_that_sent_the_form(app, client, make_tenant):
    tenant = make_tenant()
    response = send_trial(client, tenant.slug, trial_fields())
    assert app.test_client().get(response.headers["Location"]).status_code == 404


# --- the stop link ------------------------------------------------------------------------------


def test_the_stop_link_lists_the_number_at_once_and_calls_are_refused(app, client, desk):
    take_leads(app, desk.tenant, desk.agent)
    response = send_trial(client, desk.tenant.slug, trial_fields(consent_marketing="y"))
    receipt = client.get(response.headers["Location"])
    link = re.search(r'id="stop-link" href="[^"]*"|href="([^"]+)" id="stop-link"', receipt.text)
    stop_url = re.search(r'href="([^"]+)" id="stop-link"', receipt.text).group(1)
    path = stop_url.split("://", 1)[1].split("/", 1)[1]
    page = client.get("/" + path)
    assert page.status_code == 200 and link
    with acting_for(app, desk.tenant):
        assert not dnc.standing("+8613900139000", None).listed  # opening the link changes nothing
    done = client.post("/" + path, data={"csrf_token": CSRF_RE.search(page.text).group(1)})
    assert done.status_code == 200 and "we will not call or email you again" in done.text
    with acting_for(app, desk.tenant) as session:
        assert dnc.standing("+8613900139000", None).listed
        assert dnc.standing(None, "meimei@example.test").listed
        lead = session.scalars(select(Lead)).one()
        assert lead.marketing_consent is False
        with pytest.raises(Exception, match=r"do-not-contact|consent"):
            pipeline.log_call(
                lead, pipeline.CallLog("answered"), user=session.get(User, desk.agent.id), actor=OPERATOR
            )
    assert client.get(f"/t/{desk.tenant.slug}/stop/forged-token").status_code == 404


def test_a_listed_person_who_asks_again_may_be_called_about_it_but_not_marketed_to(app, client, desk):
    with acting_for(app, desk.tenant) as session:
        dnc.add_entry("phone", "13900139000", reason="12321 complaint", source="12321", actor=OPERATOR)
        session.commit()
    send_trial(client, desk.tenant.slug, trial_fields(consent_marketing="y"))
    login(client, desk.tenant, desk.agent)
    page = client.get(f"/t/{desk.tenant.slug}/leads/LD-1001")
    assert page.status_code == 200
    assert 'id="dnc-banner"' in page.text and "calls about it are allowed; marketing is not" in page.text
    assert "Do not contact" in client.get(f"/t/{desk.tenant.slug}/leads?view=all").text
    with acting_for(app, desk.tenant) as session:
        lead = session.scalars(select(Lead)).one()
        from crm.leads.consent import permission

        allowed = permission(lead)
        assert allowed.call and not allowed.marketing and allowed.listed


# --- the pipeline -------------------------------------------------------------------------------


def test_round_robin_shares_new_leads_among_the_staff_who_take_them(app, client, make_tenant, make_user):
    tenant = make_tenant()
    first, second = make_user(tenant, "agent"), make_user(tenant, "agent")
    make_user(tenant, "agent")  # does not take leads
    take_leads(app, tenant, first, second)
    for n in range(4):
        send_trial(client, tenant.slug, trial_fields(phone=f"1390013901{n}"))
    assert [lead.assignee_id for lead in leads_of(app, tenant)] == [first.id, second.id, first.id, second.id]


def test_calls_meet_the_first_contact_and_unanswered_ones_are_counted(app, client, desk):
    take_leads(app, desk.tenant, desk.agent)
    with travel(shanghai(2026, 9, 16, 10, 0)):
        send_trial(client, desk.tenant.slug, trial_fields())
    url = f"/t/{desk.tenant.slug}/leads/LD-1001"
    with travel(shanghai(2026, 9, 16, 10, 30)):
        login(client, desk.tenant, desk.agent)
        for outcome in ("no_answer", "busy"):
            response = submit(
                client, url + "/call", {"call-direction": "outbound", "call-outcome": outcome}, form_page=url
            )
            assert response.status_code == 302, response.text
        page = client.get(url)
    assert "Tried 2 times, no answer" in page.text
    with travel(shanghai(2026, 9, 16, 11, 0)):
        submit(
            client,
            url + "/call",
            {
                "call-direction": "outbound",
                "call-outcome": "answered",
                "call-duration_seconds": "95",
                "call-note": "Wants 20 seats",
            },
            form_page=url,
        )
    [lead] = leads_of(app, desk.tenant)
    assert lead.stage == "contacted" and lead.first_contacted_at == shanghai(2026, 9, 16, 11, 0)
    assert lead.first_contact_due_at is None and lead.failed_attempts == 0
    with acting_for(app, desk.tenant) as session:
        clock = session.scalars(select(Clock).where(Clock.subject_type == "lead")).one()
        assert clock.state == ClockState.MET and clock.breached_at is None


def test_after_n_unanswered_calls_a_lead_is_unreachable(app, desk):
    with acting_for(app, desk.tenant) as session:
        received = intake.receive(
            intake.LeadDetails(name="张三", phone="13800138111"),
            source="staff",
            actor=OPERATOR,
            ip=None,
            proofs=[(None, True, "call-recording-42")],
        )
        agent = session.get(User, desk.agent.id)
        for _ in range(5):
            pipeline.log_call(received.lead, pipeline.CallLog("no_answer"), user=agent, actor=OPERATOR)
        session.commit()
        assert received.lead.stage == "unreachable"
        clock = session.scalars(select(Clock).where(Clock.subject_type == "lead")).one()
        assert clock.state == ClockState.STOPPED


def test_a_lead_without_consent_cannot_be_called_until_one_is_recorded(app, desk):
    with acting_for(app, desk.tenant) as session:
        lead = intake.receive(
            intake.LeadDetails(name="李四", phone="13800138222"),
            source="import",
            actor=OPERATOR,
            ip=None,
            proofs=[],
        ).lead
        agent = session.get(User, desk.agent.id)
        with pytest.raises(Exception, match="No consent"):
            pipeline.log_call(lead, pipeline.CallLog("answered"), user=agent, actor=OPERATOR)
        pipeline.record_consent(lead, "signed form #77", user=agent, actor=OPERATOR)
        pipeline.log_call(lead, pipeline.CallLog("answered"), user=agent, actor=OPERATOR)
        session.commit()
        assert lead.stage == "contacted"
        # Once the person asks to stop, staff cannot record their way past it.
        pipeline.refuse_contact(lead, source="call", reason="asked on a call", user=agent, actor=OPERATOR)
        with pytest.raises(Exception, match="manager must remove it"):
            pipeline.record_consent(lead, "signed form #78", user=agent, actor=OPERATOR)


def test_stages_lost_needs_a_reason_and_won_links_a_customer(app, client, desk):
    send_trial(client, desk.tenant.slug, trial_fields())
    send_trial(client, desk.tenant.slug, trial_fields(phone="13900139001", name="王五"))
    login(client, desk.tenant, desk.agent)
    base = f"/t/{desk.tenant.slug}/leads"
    refused = submit(client, f"{base}/LD-1001/stage", {"stage-stage": "lost"}, form_page=f"{base}/LD-1001")
    assert refused.status_code == 422
    lost = submit(
        client,
        f"{base}/LD-1001/stage",
        {"stage-stage": "lost", "stage-lost_reason": "Too expensive"},
        form_page=f"{base}/LD-1001",
    )
    assert lost.status_code == 302
    backwards = submit(client, f"{base}/LD-1001/stage", {"stage-stage": "new"}, form_page=f"{base}/LD-1001")
    assert backwards.status_code == 400
    won = submit(client, f"{base}/LD-1002/stage", {"stage-stage": "won"}, form_page=f"{base}/LD-1002")
    assert won.status_code == 302
    leads = leads_of(app, desk.tenant)
    assert (leads[0].stage, leads[0].lost_reason) == ("lost", "Too expensive")
    assert leads[1].stage == "won" and leads[1].customer_id is not None


def test_the_list_views_and_search(app, client, desk):
    with travel(shanghai(2026, 9, 16, 10, 0)):
        send_trial(client, desk.tenant.slug, trial_fields())
        send_trial(
            client, desk.tenant.slug, trial_fields(phone="13900139001", name="王五", company="五洲通信")
        )
    base = f"/t/{desk.tenant.slug}/leads"
    with travel(shanghai(2026, 9, 17, 10, 0)):
        login(client, desk.tenant, desk.agent)
        overdue = client.get(base + "?view=overdue")
    login(client, desk.tenant, desk.agent)
    assert "LD-1001" in client.get(base).text
    assert "LD-1001" in overdue.text and "LD-1002" in overdue.text
    found = client.get(base + "?view=all&q=9001").text
    assert "LD-1002" in found and "LD-1001" not in found
    assert "LD-1002" in client.get(base + "?view=all&q=五洲").text
    assert "LD-1001" in client.get(base + "?view=all&q=ld-1001").text
    assert client.get(base + "?view=nonsense").status_code == 400
    assert client.get(base + "?after=garbage").status_code == 400


def test_another_tenants_lead_is_not_found(app, client, make_tenant, make_user, desk):
    send_trial(client, desk.tenant.slug, trial_fields())
    other = make_tenant()
    outsider = make_user(other, "admin")
    login(client, other, outsider)
    assert client.get(f"/t/{other.slug}/leads/LD-1001").status_code == 404
    assert "LD-1001" not in client.get(f"/t/{other.slug}/leads?view=all").text


def test_an_auditor_reads_but_cannot_work_leads(app, client, desk):
    send_trial(client, desk.tenant.slug, trial_fields())
    login(client, desk.tenant, desk.auditor)
    url = f"/t/{desk.tenant.slug}/leads/LD-1001"
    assert client.get(url).status_code == 200
    assert submit(client, url + "/note", {"note-body": "x"}, form_page=url).status_code == 403


def test_a_breached_first_contact_tells_the_owner(app, client, desk):
    take_leads(app, desk.tenant, desk.agent)
    with travel(shanghai(2026, 9, 16, 10, 0)):
        send_trial(client, desk.tenant.slug, trial_fields())
    with travel(shanghai(2026, 9, 16, 15, 0)):  # due 14:30 (lunch 12:00-13:30)
        assert run_sweep(app).breached >= 1
    with acting_for(app, desk.tenant) as session:
        from crm.sla.models import Notification

        told = {(n.user_id, n.event) for n in session.scalars(select(Notification))}
        assert (desk.agent.id, "breached") in told
        clock = session.scalars(select(Clock).where(Clock.metric == Metric.FIRST_CONTACT)).one()
        assert clock.breached_at == shanghai(2026, 9, 16, 14, 30)


# --- conversion, erasure, settings, the start page ------------------------------------------------


def test_a_won_leads_sales_history_shows_on_the_customers_later_refund_ticket(app, client, desk):
    from tests.test_portal import good_fields, send_form

    send_trial(
        client, desk.tenant.slug, trial_fields(name="李雷", phone="13800138000", consent_marketing="y")
    )
    with acting_for(app, desk.tenant) as session:
        lead = session.scalars(select(Lead)).one()
        agent = session.get(User, desk.agent.id)
        note = pipeline.CallLog("answered", note="Promised unlimited minutes at 199 a month")
        pipeline.log_call(lead, note, user=agent, actor=OPERATOR)
        pipeline.set_stage(lead, "trial", user=agent, actor=OPERATOR)
        pipeline.set_stage(lead, "won", user=agent, actor=OPERATOR)
        session.commit()
    assert send_form(client, desk.tenant.slug, good_fields()).status_code == 302
    login(client, desk.tenant, desk.agent)
    page = client.get(f"/t/{desk.tenant.slug}/tickets/1001")
    assert 'id="sales-history"' in page.text
    assert "LD-1001" in page.text and "Promised unlimited minutes at 199 a month" in page.text


def test_erasing_a_lead_keeps_the_consent_proof_until_its_retention_ends(app, client, desk):
    send_trial(client, desk.tenant.slug, trial_fields())
    login(client, desk.tenant, desk.agent)
    url = f"/t/{desk.tenant.slug}/leads/LD-1001"
    assert submit(client, url + "/erase", {}, form_page=url).status_code == 422  # an agent may not
    manager = app.test_client()
    login(manager, desk.tenant, desk.manager)
    assert submit(manager, url + "/erase", {}, form_page=url).status_code == 302
    with acting_for(app, desk.tenant) as session:
        lead = session.scalars(select(Lead)).one()
        assert (lead.name, lead.phone, lead.email, lead.need) == ("—", None, None, None)
        proofs = list(session.scalars(select(Consent)))
        assert proofs and all(p.phone == "+8613900139000" for p in proofs)
        assert pipeline.purge_expired_proofs() == 0
        later = proofs[0].retain_until
        assert pipeline.purge_expired_proofs(later) == 2
        session.commit()
    assert "韩梅梅" not in client.get(url).text


def test_the_tenant_sets_the_promise_the_attempts_and_the_consent_wording(app, client, desk):
    login(client, desk.tenant, desk.admin)
    url = f"/t/{desk.tenant.slug}/admin/settings"
    page = client.get(url)
    fields = {
        "ticket_prefix": "RF",
        "form_submissions_per_hour": "10",
        "agent_display": "first_name",
        "team_name": "Care",
        "country": "CN",
        "approval_threshold": "500",
        "first_contact_minutes": "60",
        "unreachable_after_attempts": "3",
        "consent_retention_days": "200",
        "consent_contact_text": "Ring me about this trial.",
    }
    assert page.status_code == 200
    assert submit(client, url, {**fields, "consent_retention_days": "100"}).status_code == 400
    assert submit(client, url, fields).status_code == 302
    form = client.get(f"/t/{desk.tenant.slug}/trial")
    assert "Ring me about this trial." in form.text
    with travel(shanghai(2026, 9, 16, 10, 0)):
        send_trial(client, desk.tenant.slug, trial_fields())
    with acting_for(app, desk.tenant) as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.first_contact_due_at == shanghai(2026, 9, 16, 11, 0)
        proof = session.scalars(select(Consent).where(Consent.purpose == "contact")).one()
        assert (proof.text, proof.text_version) == ("Ring me about this trial.", "2")


def test_the_start_page_counts_leads(app, client, desk):
    take_leads(app, desk.tenant, desk.agent)
    with travel(shanghai(2026, 9, 16, 10, 0)):
        send_trial(client, desk.tenant.slug, trial_fields())
    login(client, desk.tenant, desk.agent)
    home = client.get(f"/t/{desk.tenant.slug}/")
    counts = re.search(r'id="lead-counts">(.*?)</div>\s*</div>', home.text, re.S).group(1)
    numbers = re.findall(r'fs-3 fw-semibold">(?:<span aria-hidden="true">⚠</span> )?(\d+)<', counts)
    assert numbers == ["1", "1", "1"]  # mine, new, overdue (its promise was in September)
