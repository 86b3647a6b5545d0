"""Inbound email through the MTA's pipe (issue 17, section 1): replies reach their
ticket by the signed plus-address or by In-Reply-To, new mail becomes a ticket, machines
make nothing. The corpus below is built in the shapes real mail programs send: Gmail,
Outlook, Apple Mail, QQ Mail and Foxmail replies, GBK mail labelled GB2312, Big5, an
HTML-only message, a bounce and out-of-office replies."""

import re
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import pytest
from sqlalchemy import func, select, update

from crm.audit.models import AuditEvent
from crm.auth.models import User
from crm.files.models import Attachment
from crm.inbound.addresses import reply_address
from crm.notify.models import OutboxMessage
from crm.provisioning.models import TenantSettings
from crm.tickets import service as tickets
from crm.tickets.customer_actions import CUSTOMER_FILES_PER_TICKET
from crm.tickets.input_checks import Upload
from crm.tickets.intake import EMAIL_RECEIPTS_PER_HOUR
from crm.tickets.models import EntryKind, Status, ThreadEntry, Ticket
from tests.conftest import acting_for, login
from tests.imap import SUPPORT
from tests.test_email import outbox_rows, submit_refund_form
from tests.test_portal import PDF
from tests.test_ticket_service import refund_request


def desk(app, make_tenant):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(support_address=SUPPORT))
        ticket = tickets.submit_refund_request(refund_request(), nonce="in-1", ip=None).ticket
        session.commit()
        return tenant, ticket.id, ticket.reference, reply_address(ticket)


def mail(
    *, to: str, body: str, subject: str = "Re: RF-1001", sender=("王小明", "xm@example.test"), **headers
):
    message = EmailMessage()
    message["From"] = formataddr(sender)
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="mail.example.test")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def raw_mail(*, to: str, body: str, charset: str, codec: str, subject: str = "Re: RF-1001") -> bytes:
    """A message written by hand, its body in ``codec`` but labelled ``charset`` (as
    Chinese mail programs do: GBK text labelled GB2312)."""
    head = (
        f"From: =?utf-8?b?5p2O6Zu3?= <lilei@example.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: {make_msgid(domain='qq.example.test')}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: text/plain; charset="{charset}"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
    )
    return head.encode("ascii") + body.encode(codec)


def deliver(runner, tenant, raw):
    raw = raw if isinstance(raw, bytes) else bytes(raw)
    result = runner.invoke(args=["mail", "deliver", "--tenant", tenant.slug], input=raw)
    assert result.exit_code == 0, result.output
    return result.output.strip()


def messages(app, tenant, ticket_id) -> list[ThreadEntry]:
    with acting_for(app, tenant) as session:
        entries = list(
            session.scalars(
                select(ThreadEntry)
                .where(ThreadEntry.ticket_id == ticket_id, ThreadEntry.kind == EntryKind.INBOUND_MESSAGE)
                .order_by(ThreadEntry.id)
            )
        )
        session.expunge_all()
        return entries


def test_replies_in_each_mail_programs_shape_reach_their_ticket_trimmed(app, runner, make_tenant):
    tenant, ticket_id, reference, address = desk(app, make_tenant)
    assert re.fullmatch(r"support\+1001-[0-9a-f]{12}@desk\.example", address)
    gmail = mail(
        to=address,
        body="Thanks, the bank slip is attached.\n\n"
        "On Mon, 30 Nov 2026 at 10:02, Desk <support@desk.example> wrote:\n"
        "> We have received your refund request RF-1001.\n> Regards",
    )
    gmail.add_attachment(PDF, maintype="application", subtype="pdf", filename="slip.pdf")
    assert deliver(runner, tenant, gmail) == f"filed on {reference}"
    outlook = mail(
        to=address,
        body="Any news?\r\n\r\n________________________________\r\nFrom: Desk <support@desk.example>\r\n"
        "Sent: Monday\r\nSubject: RF-1001",
    )
    assert deliver(runner, tenant, outlook) == f"filed on {reference}"
    apple = mail(to=address, body="One more thing: my account is 8800123.\n\n-- \nSent from my iPhone")
    assert deliver(runner, tenant, apple) == f"filed on {reference}"
    qq = raw_mail(
        to=address,
        body="请尽快退款，谢谢。张喆\n\n------------------ 原始邮件 ------------------\n"
        "发件人: Desk\n主题: RF-1001",
        charset="gb2312",
        codec="gbk",  # 喆 is GBK, not GB2312: decoded as their superset GB18030
    )
    assert deliver(runner, tenant, qq) == f"filed on {reference}"
    foxmail = raw_mail(
        to=address, body="我已上傳憑證。\n\n發件人：Desk\n發送時間：2026-11-30", charset="big5", codec="big5"
    )
    assert deliver(runner, tenant, foxmail) == f"filed on {reference}"

    bodies = [entry.body for entry in messages(app, tenant, ticket_id)][1:]  # after the form's own
    assert bodies == [
        "Thanks, the bank slip is attached.",
        "Any news?",
        "One more thing: my account is 8800123.",
        "请尽快退款，谢谢。张喆",
        "我已上傳憑證。",
    ]
    with acting_for(app, tenant) as session:
        names = session.scalars(select(Attachment.filename).where(Attachment.ticket_id == ticket_id)).all()
    assert sorted(set(names)) == ["original.eml", "slip.pdf"]  # every email kept whole, as evidence
    assert names.count("original.eml") == 5


def test_a_reply_found_by_in_reply_to_and_the_reply_to_the_desk_sends(
    app, make_app, runner, smtp_url, smtp_server, make_tenant
):
    desk_app = make_app(smtp_url=smtp_url)
    tenant = make_tenant()
    with acting_for(desk_app, tenant) as session:
        session.execute(update(TenantSettings).values(support_address=SUPPORT))
        session.commit()
    client = desk_app.test_client()
    client.get(submit_refund_form(client, tenant, email="xm@example.test").location)
    [sent] = smtp_server.messages
    assert re.fullmatch(r".*<support\+1001-[0-9a-f]{12}@desk\.example>", str(sent["Reply-To"]))
    [row] = outbox_rows(desk_app, tenant)
    assert row.message_id == str(sent["Message-ID"])

    reply = mail(
        to=SUPPORT, body="I sent it from my phone.", In_Reply_To=row.message_id, References=row.message_id
    )
    assert deliver(desk_app.test_cli_runner(), tenant, reply) == "filed on RF-1001"


def test_new_mail_becomes_a_ticket_and_machines_make_nothing(app, runner, make_tenant):
    tenant, _ticket_id, _reference, address = desk(app, make_tenant)
    html_only = EmailMessage()
    html_only["From"] = formataddr(("Zhao Min", "zhao@example.test"))
    html_only["To"] = SUPPORT
    html_only["Subject"] = "Refund for my number"
    html_only.set_content(
        "<html><head><style>p{}</style></head><body><p>Please refund <b>¥99</b>.</p>"
        "<script>alert(1)</script></body></html>",
        subtype="html",
    )
    exe = mail(to=SUPPORT, body="See the file.", subject="Evidence", sender=("Wu", "wu@example.test"))
    exe.add_attachment(
        b"MZ\x90\x00" + b"\x00" * 64, maintype="application", subtype="octet-stream", filename="run.exe"
    )
    forged = mail(
        to="support+1001-000000000000@desk.example", body="Let me in.", sender=("X", "x@example.test")
    )
    out = [deliver(runner, tenant, message) for message in (html_only, exe, forged)]
    assert out == ["new ticket RF-1002", "new ticket RF-1003", "new ticket RF-1004"]
    with acting_for(app, tenant) as session:
        made = {t.number: t for t in session.scalars(select(Ticket).where(Ticket.number > 1001))}
        first = {
            number: session.scalars(
                select(ThreadEntry.body).where(ThreadEntry.ticket_id == t.id).order_by(ThreadEntry.id)
            ).first()
            for number, t in made.items()
        }
    assert made[1002].channel == "email" and made[1002].requester_email == "zhao@example.test"
    assert made[1002].requester_name == "Zhao Min" and made[1002].kind == "inquiry"
    assert "Please refund ¥99." in first[1002] and "alert" not in first[1002] and "<" not in first[1002]
    assert "未保存（不接受此类文件）：run.exe" in first[1003]  # in the tenant's language
    assert "Let me in." in first[1004]  # a forged token files nothing on RF-1001

    bounce = EmailMessage()
    bounce["From"] = "MAILER-DAEMON@mx.example.test"
    bounce["To"] = SUPPORT
    bounce["Subject"] = "Undelivered Mail Returned to Sender"
    bounce.set_content("This is the mail system.")
    bounce.make_mixed()
    bounce.replace_header("Content-Type", 'multipart/report; report-type=delivery-status; boundary="b1"')
    out_of_office = mail(to=address, body="I am away until Monday.", Auto_Submitted="auto-replied")
    qq_auto = mail(to=address, body="您的来信已收到，我会尽快回复。", subject="自动回复: RF-1001")
    bulk = mail(to=SUPPORT, body="Newsletter", subject="News", Precedence="bulk")
    for machine in (bounce, out_of_office, qq_auto, bulk):
        assert deliver(runner, tenant, machine).startswith("ignored: ")
    with acting_for(app, tenant) as session:
        assert session.scalar(select(Ticket.number).order_by(Ticket.number.desc()).limit(1)) == 1004
        assert (
            len(session.scalars(select(AuditEvent).where(AuditEvent.action == "email.inbound_ignored")).all())
            == 4
        )


def test_a_reply_to_a_closed_ticket_or_another_tenants_token_makes_a_new_ticket(app, runner, make_tenant):
    tenant, ticket_id, reference, address = desk(app, make_tenant)
    other, other_id, _other_reference, other_address = desk(app, make_tenant)
    across = mail(to=other_address, body="Wrong desk.", sender=("X", "x@example.test"))
    assert deliver(runner, tenant, across) == "new ticket RF-1002"  # this tenant's RF-1001 is another ticket
    assert len(messages(app, other, other_id)) == 1 and len(messages(app, tenant, ticket_id)) == 1
    with acting_for(app, tenant) as session:
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(status=Status.CLOSED))
        session.commit()
    late = mail(to=address, body="Is it done?")
    assert deliver(runner, tenant, late) == "new ticket RF-1003"
    with acting_for(app, tenant) as session:
        follow_up = session.scalars(select(Ticket).where(Ticket.number == 1003)).one()
        body = session.scalars(select(ThreadEntry.body).where(ThreadEntry.ticket_id == follow_up.id)).first()
    assert f"这是对已关闭的 {reference} 的后续来信。" in body


def test_a_reply_to_a_merged_ticket_opens_a_follow_up_naming_where_it_went(
    app, runner, make_tenant, make_user
):
    tenant, target_id, target_reference, _address = desk(app, make_tenant)
    agent = make_user(tenant, "agent")
    with acting_for(app, tenant) as session:
        duplicate = tickets.submit_refund_request(refund_request(), nonce="in-2", ip=None).ticket
        tickets.merge(duplicate, session.get(Ticket, target_id), user=session.get(User, agent.id), ip=None)
        session.commit()
        duplicate_reference, duplicate_address = duplicate.reference, reply_address(duplicate)
    assert deliver(runner, tenant, mail(to=duplicate_address, body="还有进展吗？")) == "new ticket RF-1003"
    with acting_for(app, tenant) as session:
        follow_up = session.scalars(select(Ticket).where(Ticket.number == 1003)).one()
        body = session.scalars(select(ThreadEntry.body).where(ThreadEntry.ticket_id == follow_up.id)).first()
    assert f"这是对 {duplicate_reference} 的后续来信，该申请已合并到 {target_reference}。" in body


def test_a_reply_is_filed_when_its_ticket_holds_all_the_files_it_may(app, runner, make_tenant):
    tenant, ticket_id, reference, address = desk(app, make_tenant)
    with acting_for(app, tenant) as session:
        ticket = session.get(Ticket, ticket_id)
        for n in range(CUSTOMER_FILES_PER_TICKET // 5):
            files = [Upload(f"note-{n}-{i}.txt", f"evidence {n} {i}".encode()) for i in range(5)]
            tickets.customer_reply(ticket, f"证据 {n}", ip=None, uploads=files)
        session.commit()
    late = mail(to=address, body="银行回单见附件。")
    late.add_attachment(PDF, maintype="application", subtype="pdf", filename="slip.pdf")
    assert deliver(runner, tenant, late) == f"filed on {reference}"
    last = messages(app, tenant, ticket_id)[-1]
    assert last.body.startswith("银行回单见附件。")
    assert "original.eml, slip.pdf" in last.body  # named as not kept, in the tenant's language
    with acting_for(app, tenant) as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == CUSTOMER_FILES_PER_TICKET


def test_the_pipe_refuses_what_is_not_a_message(app, runner, make_tenant):
    tenant, *_ = desk(app, make_tenant)
    empty = runner.invoke(args=["mail", "deliver", "--tenant", tenant.slug], input=b"")
    assert empty.exit_code != 0 and "expected one email message" in empty.output
    unknown = runner.invoke(args=["mail", "deliver", "--tenant", "no-such-desk"], input=b"From: a@b\n\nhi")
    assert unknown.exit_code != 0


def test_an_admin_sets_the_support_address_and_a_bad_one_is_refused(app, client, signed_in):
    tenant, _admin = signed_in("admin")
    page = client.get(f"/t/{tenant.slug}/admin/settings")
    assert "Support address for customers&#39; email" in page.text or "Support address" in page.text
    form = {
        key: value
        for key, value in re.findall(r'<(?:input|textarea)[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text)
    }
    for bad, message in (
        ("not an address", "Enter a valid email address."),
        ("a+b@x.example", "without a plus"),
    ):
        refused = client.post(f"/t/{tenant.slug}/admin/settings", data={**form, "support_address": bad})
        assert refused.status_code >= 400 and message in refused.text, bad
    with acting_for(app, tenant) as session:
        assert session.scalars(select(TenantSettings.support_address)).one() is None
    selects = dict(
        re.findall(r'<select[^>]*name="([^"]+)".*?<option[^>]*selected[^>]*value="([^"]*)"', page.text, re.S)
    )
    saved = client.post(
        f"/t/{tenant.slug}/admin/settings",
        data={**form, **selects, "support_address": " Support@Desk.Example "},
    )
    assert saved.status_code == 302, saved.text
    with acting_for(app, tenant) as session:
        assert session.scalars(select(TenantSettings.support_address)).one() == "support@desk.example"


def test_a_support_address_on_a_test_domain_is_taken_as_every_address_is(app, client, signed_in):
    """The demo's desk is demo.test; the desk takes *.test addresses everywhere else."""
    tenant, _admin = signed_in("admin")
    page = client.get(f"/t/{tenant.slug}/admin/settings")
    form = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
    form.pop("require_two_factor", None)  # a checkbox: its value is there, ticked or not
    selects = dict(
        re.findall(r'<select[^>]*name="([^"]+)".*?<option[^>]*selected[^>]*value="([^"]*)"', page.text, re.S)
    )
    saved = client.post(
        f"/t/{tenant.slug}/admin/settings", data={**form, **selects, "support_address": "help@demo.test"}
    )
    assert saved.status_code == 302, saved.text
    with acting_for(app, tenant) as session:
        assert session.scalars(select(TenantSettings.support_address)).one() == "help@demo.test"


def test_mail_without_a_usable_sender_files_nothing_and_is_not_retried(app, runner, make_tenant):
    tenant, *_ = desk(app, make_tenant)
    for raw in (
        b"Subject: hi\r\n\r\nno sender",
        b"From: not an address\r\n\r\nhello",
        b"\xff\xfe\x00garbage",
    ):
        assert deliver(runner, tenant, raw) == "ignored: no valid sender address"
    with acting_for(app, tenant) as session:
        assert session.scalar(select(Ticket.number).order_by(Ticket.number.desc()).limit(1)) == 1001


def test_new_mail_is_acknowledged_with_its_reference_but_not_a_flood_from_one_address(
    app, make_app, smtp_url, smtp_server, make_tenant
):
    desk_app = make_app(smtp_url=smtp_url)
    tenant, _ticket_id, _reference, _address = desk(desk_app, make_tenant)
    runner = desk_app.test_cli_runner()
    new = mail(
        to=SUPPORT,
        body="我的号码被停用了，请退还余额。",
        subject="申请退款",
        sender=("李雷", "lilei@example.test"),
    )
    assert deliver(runner, tenant, new) == "new ticket RF-1002"
    ack = smtp_server.messages[-1]
    assert ack["To"] == "lilei@example.test" and "RF-1002" in str(ack["Subject"])
    assert ack["Auto-Submitted"] == "auto-replied"  # RFC 3834: no out-of-office answers it
    assert re.fullmatch(r".*<support\+1002-[0-9a-f]{12}@desk\.example>", str(ack["Reply-To"]))
    text = ack.get_body().get_content()
    assert "李雷，您好" in text and "已为您创建申请 RF-1002" in text and "/track/" in text

    sent_before = len(smtp_server.messages)
    for n in range(4):  # a machine answering every email, or someone forging this address
        flood = mail(
            to=SUPPORT, body=f"Message {n}", subject=f"Hello {n}", sender=("Bot", "bot@example.test")
        )
        deliver(runner, tenant, flood)
    to_bot = [m for m in smtp_server.messages[sent_before:] if m["To"] == "bot@example.test"]
    assert len(to_bot) == EMAIL_RECEIPTS_PER_HOUR  # every email still opens its ticket
    with acting_for(desk_app, tenant) as session:
        assert session.scalar(select(func.count()).where(Ticket.requester_email == "bot@example.test")) == 4


def test_a_replys_subject_is_kept_shown_and_searched(app, runner, make_tenant, make_user):
    tenant, _ticket_id, reference, address = desk(app, make_tenant)
    reply = mail(to=address, body="见附件。", subject="Re: 发票抬头写错了")
    assert deliver(runner, tenant, reply) == f"filed on {reference}"
    client = app.test_client()
    assert login(client, tenant, make_user(tenant, "agent")).status_code == 302
    found = client.get(f"/t/{tenant.slug}/tickets", query_string={"view": "all", "q": "抬头"})
    assert reference in found.text and "<mark>抬头</mark>" in found.text
    page = client.get(f"/t/{tenant.slug}/tickets/{reference.split('-')[1]}")
    assert "Re: 发票抬头写错了" in page.text


def test_a_staff_members_answer_to_a_notice_is_not_filed_as_the_customers(app, runner, make_tenant):
    tenant, ticket_id, _reference, _address = desk(app, make_tenant)
    with acting_for(app, tenant) as session:
        session.add(
            OutboxMessage(
                ticket_id=ticket_id,
                to_address="agent@desk.example",
                subject="New reply on RF-1001",
                body="…",
                locale="en",
                status="sent",
                message_id="<notice-1@desk.example>",
            )
        )
        session.commit()
    answer = mail(to=SUPPORT, body="I'll call them.", In_Reply_To="<notice-1@desk.example>")
    assert deliver(runner, tenant, answer) == "new ticket RF-1002"  # not "filed on RF-1001"


@pytest.mark.parametrize("header", ["Message-ID: <>", "Message-ID: <"])
def test_mail_whose_headers_cannot_be_read_is_ignored_not_retried(app, runner, make_tenant, header):
    tenant, *_ = desk(app, make_tenant)
    raw = f"From: x@example.test\r\nTo: {SUPPORT}\r\nSubject: hi\r\n{header}\r\n\r\nbody\r\n".encode()
    assert deliver(runner, tenant, raw) == "ignored: unreadable message"  # the MTA would retry a failure
