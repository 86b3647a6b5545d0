"""The refund policy in a real browser, in English and in Chinese: a manager drafts a
version, edits its text and a term, previews it and publishes it; then a customer with
no account finds the version in force from the hosted refund form and reads it, with
its number, effective date, SHA-256 and terms. Every page must fit a phone and label its
inputs. Screenshots go to SCREENSHOTS_DIR."""

from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_skeleton

from tests.browser import DESK, PHONE, needs_browser
from tests.conftest import PASSWORD
from tests.test_browser_sla import check_and_shoot
from tests.test_policies import independent_sha256, stored_row

pytestmark = needs_browser

WORDS = {
    "en": {
        "babel": "en",
        "email": "Email",
        "password": "Password",
        "sign_in": "Sign in",
        "new_draft": "New draft from the latest version",
        "created": "Draft version 1 created: write the policy in place of the starter text.",
        "text": "Policy text, English (Markdown)",
        "other_text": "Policy text, Simplified Chinese (Markdown)",
        "payout": "Payout within (days)",
        "save": "Save draft",
        "saved": "Draft saved; the preview below shows it.",
        "confirm": "I understand that a published version can never be changed.",
        "publish": "Publish version 1",
        "published": "Version 1 is published.",
        "title": "Refund policy, version 1",
        "in_force": "In force",
        "effective": "Effective from {when}",
        "read_it": "Read it (opens in a new tab)",
        "judged": "Your request is judged under our refund policy, version 1",
        "payout_term": "Within 10 days of approval",
        "heading": "Refunds at Huabei",
    },
    "zh-CN": {
        "babel": "zh_CN",
        "email": "邮箱",
        "password": "密码",
        "sign_in": "登录",
        "new_draft": "根据最新版本新建草稿",
        "created": "已创建第 1 版草稿：请用实际政策替换示例文字。",
        "text": "政策正文（简体中文，Markdown）",
        "other_text": "政策正文（英文，Markdown）",
        "payout": "付款期限（天）",
        "save": "保存草稿",
        "saved": "草稿已保存，可在下方预览。",
        "confirm": "我知道版本一经发布就不能再修改。",
        "publish": "发布第 1 版",
        "published": "第 1 版已发布。",
        "title": "退款政策第 1 版",
        "in_force": "现行",
        "effective": "自 {when}",
        "read_it": "查看政策（在新标签页中打开）",
        "judged": "退款政策第 1 版处理",
        "payout_term": "审批通过后 10 天内",
        "heading": "华北通信退款规则",
    },
}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_a_manager_publishes_a_policy_and_a_customer_reads_the_version_in_force(
    app, browser, live_server, make_tenant, make_user, locale
):
    words = WORDS[locale]
    tenant = make_tenant(name="Huabei Telecom 华北通信")
    manager = make_user(tenant, "manager")
    base = f"{live_server}/t/{tenant.slug}"
    staff_context = browser.new_context(locale=locale, viewport=DESK)
    staff = staff_context.new_page()

    staff.goto(f"{base}/login")
    staff.get_by_label(words["email"]).fill(manager.email)
    staff.get_by_label(words["password"]).fill(PASSWORD)
    with staff.expect_navigation():
        staff.get_by_role("button", name=words["sign_in"]).click()

    # 1. The versions list, empty; a new draft starts from the starter text.
    staff.goto(f"{base}/admin/policies")
    check_and_shoot(staff, f"policy-1-list-empty-{locale}")
    staff.set_viewport_size(DESK)
    with staff.expect_navigation():
        staff.get_by_role("button", name=words["new_draft"]).click()
    assert words["created"] in staff.locator(".alert").first.inner_text()
    check_and_shoot(staff, f"policy-2-draft-{locale}")

    # 2. The manager writes the text in the page's language (clearing the other language's
    #    starter text) and changes a term.
    staff.set_viewport_size(DESK)
    staff.get_by_label(words["text"]).fill(
        f"# {words['heading']}\n\n- 7 days: full refund\n- **Payout** within 10 days\n"
    )
    staff.get_by_label(words["other_text"]).fill("")  # the starter text is never published
    staff.get_by_label(words["payout"]).fill("10")
    with staff.expect_navigation():
        staff.get_by_role("button", name=words["save"]).click()
    assert words["saved"] in staff.locator(".alert").first.inner_text()
    preview = staff.locator("#preview-heading").locator("xpath=..")
    assert preview.get_by_role("heading", name=words["heading"]).is_visible()
    assert preview.locator("li strong", has_text="Payout").is_visible()
    assert words["payout_term"] in preview.locator(".policy-terms").inner_text()
    check_and_shoot(staff, f"policy-3-saved-preview-{locale}")

    # 3. Publishing asks for the confirmation first.
    staff.set_viewport_size(DESK)
    staff.get_by_label(words["confirm"]).check()
    with staff.expect_navigation():
        staff.get_by_role("button", name=words["publish"]).click()
    assert words["published"] in staff.locator(".alert").first.inner_text()
    row = stored_row(app, tenant, 1)
    assert row["status"] == "published"
    assert row["sha256"] == independent_sha256(row["texts"], row["terms"])
    assert row["sha256"] in staff.locator("main").inner_text()
    check_and_shoot(staff, f"policy-4-published-{locale}")
    staff.goto(f"{base}/admin/policies")
    assert words["in_force"] in staff.locator("tbody tr").first.inner_text()
    check_and_shoot(staff, f"policy-5-list-in-force-{locale}")
    staff_context.close()

    # 4. A customer on a phone, with no account, opens the hosted refund form.
    customer_context = browser.new_context(locale=locale, viewport=PHONE)
    customer = customer_context.new_page()
    customer.goto(f"{base}/refund")
    link = customer.get_by_role("link", name=words["read_it"])
    assert link.get_attribute("href") == f"/t/{tenant.slug}/policy/1"
    assert words["judged"] in link.locator("xpath=..").inner_text()
    check_and_shoot(customer, f"policy-6-refund-form-{locale}")

    # The link opens the version in a new tab.
    customer.set_viewport_size(PHONE)
    with customer_context.expect_page() as opened:
        link.click()
    policy = opened.value
    policy.wait_for_load_state()
    assert policy.url == f"{base}/policy/1"
    policy.close()

    # 5. The version in force: number, effective date, SHA-256, the text and the terms.
    customer.goto(f"{base}/policy")
    article = customer.locator("article")
    assert customer.get_by_role("heading", name=words["title"]).is_visible()
    assert words["in_force"] in article.locator(".badge").inner_text()
    local = row["effective_from"].astimezone(ZoneInfo("Asia/Shanghai"))
    when = f"{format_skeleton('yMMMEd', local, locale=words['babel'])} {local:%H:%M}"
    assert words["effective"].format(when=when) in article.inner_text()
    assert f"SHA-256: {row['sha256']}" in article.inner_text()
    assert customer.get_by_role("heading", name=words["heading"]).is_visible()
    terms = article.locator(".policy-terms")
    assert terms.is_visible() and words["payout_term"] in terms.inner_text()
    check_and_shoot(customer, f"policy-7-public-{locale}")
    customer.goto(f"{base}/policy/history")
    assert "v1" in customer.locator("tbody").inner_text()
    check_and_shoot(customer, f"policy-8-history-{locale}")
    customer_context.close()
