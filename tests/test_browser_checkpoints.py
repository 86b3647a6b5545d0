"""The signed checkpoints page in a real browser, in English and in Chinese: an admin
reads the trail's checkpoints, names a witness and downloads a checkpoint that verifies
under the published key. The page must fit a phone and label its inputs. Screenshots
go to SCREENSHOTS_DIR."""

import json
from pathlib import Path

import pytest

from crm.audit import verifier
from tests.browser import (
    DESK,
    PHONE,
    assert_fits_the_screen,
    assert_inputs_are_labelled,
    needs_browser,
    shoot,
)
from tests.conftest import PASSWORD

pytestmark = needs_browser

WORDS = {
    "en": {
        "email": "Email",
        "password": "Password",
        "sign_in": "Sign in",
        "heading": "Signed checkpoints",
        "witnesses": "Witness addresses",
        "save": "Save witnesses",
        "saved": "Witnesses saved. The next checkpoint is mailed to them.",
    },
    "zh-CN": {
        "email": "邮箱",
        "password": "密码",
        "sign_in": "登录",
        "heading": "签名检查点",
        "witnesses": "见证人邮箱",
        "save": "保存见证人",
        "saved": "见证人已保存。下一个检查点将发送给他们。",
    },
}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_an_admin_reads_checkpoints_names_a_witness_and_downloads_one(
    app, browser, live_server, make_tenant, make_user, runner, locale
):
    words = WORDS[locale]
    tenant = make_tenant(name="Huabei Telecom 华北通信")
    admin = make_user(tenant, "admin")
    assert runner.invoke(args=["audit", "checkpoint", "--tenant", tenant.slug]).exit_code == 0
    context = browser.new_context(locale=locale, viewport=DESK, accept_downloads=True)
    page = context.new_page()
    base = f"{live_server}/t/{tenant.slug}"

    page.goto(f"{base}/login")
    page.get_by_label(words["email"]).fill(admin.email)
    page.get_by_label(words["password"]).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name=words["sign_in"]).click()

    page.goto(f"{base}/audit/checkpoints")
    assert page.get_by_role("heading", name=words["heading"], level=1).is_visible()
    rows = page.locator("table tbody tr")
    assert rows.count() == 1
    tree_size = int(rows.first.locator("td.text-end.mono").inner_text())
    assert tree_size > 0

    page.get_by_label(words["witnesses"]).fill("inspector@regulator.example")
    with page.expect_navigation():
        page.get_by_role("button", name=words["save"]).click()
    assert words["saved"] in page.locator(".alert").first.inner_text()
    assert page.get_by_label(words["witnesses"]).input_value() == "inspector@regulator.example"

    for label, viewport in (("desk", DESK), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        assert_fits_the_screen(page)
        assert_inputs_are_labelled(page)
        shoot(page, f"checkpoints-{label}-{locale}")

    page.set_viewport_size(DESK)
    with page.expect_download() as download:
        rows.first.get_by_role("link").click()
    signed = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    keys = json.loads(page.request.get(f"{live_server}/.well-known/ledgerdesk-keys.json").text())
    public = {key["key_id"]: key["public_key"] for key in keys["keys"]}
    assert signed["tree_size"] == tree_size and signed["tenant"] == tenant.slug
    assert verifier.signature_holds(
        public[signed["key_id"]], verifier.checkpoint_message(signed), signed["signature"]
    )
    context.close()
