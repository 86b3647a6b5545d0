"""Everything a Chinese-speaking customer reads is in Chinese: every page and email of
theirs is rendered in zh_CN and searched for English text from our message catalogue."""

import html
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import select, update

from crm.notify.models import OutboxMessage
from crm.provisioning.models import TenantSettings
from tests.conftest import acting_for, login, submit
from tests.test_portal import LINK_RE, good_fields, send_form

CATALOGUE = Path(__file__).resolve().parent.parent / "crm" / "translations" / "messages.pot"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]")
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}


def english_fragments() -> set[str]:
    """Runs of three or more English words from every catalogue message: what shows
    when a message is left untranslated."""
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle)
    fragments = set()
    for message in catalogue:
        for text in message.id if isinstance(message.id, tuple) else (message.id,):
            for part in PLACEHOLDER.split(text or ""):
                part = part.strip(" .,:;()\n")
                if len(re.findall(r"[A-Za-z]{2,}", part)) >= 3:
                    fragments.add(part)
    return fragments


def visible_text(page: str) -> str:
    page = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", page)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture(scope="module")
def fragments() -> set[str]:
    return english_fragments()


def assert_chinese(text: str, fragments: set[str], where: str) -> None:
    leftover = sorted(fragment for fragment in fragments if fragment in text)
    assert not leftover, f"{where} shows untranslated text: {leftover[:5]}"


def test_every_page_and_email_a_chinese_customer_gets_is_in_chinese(
    app, client, make_tenant, make_user, fragments
):
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        session.execute(update(TenantSettings).values(form_submissions_per_hour=1))
        session.commit()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = CHINESE["Accept-Language"]
    pages = {"form": client.get(f"/t/{tenant.slug}/refund").text}
    pages["form with mistakes"] = send_form(
        client, tenant.slug, good_fields(name="", phone="1", amount="0")
    ).text
    response = send_form(client, tenant.slug, good_fields())
    pages["receipt"] = client.get(response.headers["Location"]).text
    tracking = LINK_RE.search(pages["receipt"]).group(1).replace("http://localhost", "")
    pages["too many requests"] = send_form(client, tenant.slug, good_fields(phone="13900139000")).text
    pages["policy"] = client.get(f"/t/{tenant.slug}/policy").text
    pages["not found"] = client.get(f"/t/{tenant.slug}/track/no-such-link").text

    staff = app.test_client()
    assert login(staff, tenant, make_user(tenant, "agent")).status_code == 302
    url = f"/t/{tenant.slug}/tickets/1001"
    submit(staff, f"{url}/reply", {"reply-body": "您好，我们正在核实。"}, form_page=url)
    submit(staff, f"{url}/request-info", {"info-body": "请提供付款截图。"}, form_page=url)
    pages["tracking"] = client.get(tracking).text

    for where, page in pages.items():
        assert '<html lang="zh' in page, where
        assert_chinese(visible_text(page), fragments, where)
    with acting_for(app, tenant) as session:
        emails = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert len(emails) == 3  # the receipt, the reply, the request for information
    for email in emails:
        assert_chinese(f"{email.subject}\n{email.body}", fragments, f"email {email.subject!r}")
