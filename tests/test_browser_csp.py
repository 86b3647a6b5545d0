"""The Content-Security-Policy in a real browser (Debian's Chromium): every main page,
public and staff, is served with the policy and breaks none of it; the confirmations
that used inline handlers still ask before acting."""

from crm.audit.service import Actor
from crm.tickets import canned
from tests.browser import DESK, needs_browser
from tests.conftest import PASSWORD, acting_for
from tests.test_policies import published

pytestmark = needs_browser

# Installed by the browser before any page script, so it sees every violation; CDP
# scripts are not subject to the page's policy.
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"}` +
      ` at ${event.sourceFile}:${event.lineNumber}`
  );
});
"""


class PolicyWatch:
    """A browser page that records, for each visit, the policy it was served with and
    any violation Chromium reports (as an event or on the console)."""

    def __init__(self, context) -> None:
        context.add_init_script(WATCH_VIOLATIONS)
        self.page = context.new_page()
        self.console: list[str] = []
        self.page.on(
            "console",
            lambda message: (
                self.console.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        self.page.on("dialog", lambda dialog: dialog.dismiss())  # "Cancel" on every confirm()
        self.visited: dict[str, list[str]] = {}

    def check(self, label: str, response=None) -> None:
        """Record what broke the policy on the page now shown; ``response`` (if it was just
        loaded) must carry the policy."""
        if response is not None:
            policy = response.headers.get("content-security-policy", "")
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, (label, policy)
        self.page.wait_for_load_state("load")
        self.visited[label] = self.page.evaluate("window.__cspViolations") + self.console
        self.console = []

    def visit(self, label: str, url: str) -> None:
        response = self.page.goto(url)
        assert response.status < 400, (label, url, response.status)
        self.check(label, response)

    def click_and_check(self, label: str, locator) -> None:
        with self.page.expect_navigation() as navigation:
            locator.click()
        self.check(label, navigation.value)


def test_the_main_pages_break_no_part_of_the_content_security_policy(
    app, browser, live_server, make_tenant, make_user
):
    tenant = make_tenant()
    admin = make_user(tenant, "admin")
    with acting_for(app, tenant) as session:
        canned.create_canned(title="Thanks", body="Thank you, {customer_name}.", actor=Actor.operator("test"))
        session.commit()
    published(app, tenant)  # the policy page, and the receipt's link to it
    base = f"{live_server}/t/{tenant.slug}"

    customer = PolicyWatch(browser.new_context(locale="en", viewport=DESK))
    customer.visit("refund form", f"{base}/refund")
    customer.page.fill("#name", "Lei Li")
    customer.page.fill("#phone", "138 0013 8000")
    customer.page.fill("#email", "lilei@example.test")
    customer.page.select_option("#reason", "unused_balance")
    customer.page.fill("#description", "Number cancelled; please refund the rest.")
    customer.page.check("#consent")
    customer.click_and_check("receipt", customer.page.get_by_role("button", name="Send my request"))
    tracking = customer.page.locator("#tracking-link").get_attribute("href")
    customer.visit("tracking page", tracking.replace("http://localhost", live_server))
    # Withdrawing asks first (a script from crm/static, not an inline handler): "Cancel"
    # keeps the request open.
    customer.page.get_by_role("button", name="Withdraw my request").click()
    customer.check("tracking page after a cancelled withdrawal")
    assert "You withdrew this request." not in customer.page.text_content("main")
    customer.visit("policy page", f"{base}/policy")

    staff = PolicyWatch(browser.new_context(locale="en", viewport=DESK))
    staff.visit("login", f"{base}/login")
    staff.page.get_by_label("Email").fill(admin.email)
    staff.page.get_by_label("Password").fill(PASSWORD)
    staff.click_and_check("staff home", staff.page.get_by_role("button", name="Sign in"))
    staff.visit("queue", f"{base}/tickets")
    staff.click_and_check("ticket", staff.page.get_by_role("link", name="RF-1001"))
    # The canned-reply picker fills the reply box in place, from the static script.
    picker = staff.page.locator("form.canned-picker").first
    picker.locator("select").select_option(label="Thanks")
    picker.locator("button[type=submit]").click()
    box = staff.page.locator(f"#{picker.get_attribute('data-target')}")
    assert box.input_value() == "Thank you, Lei Li."
    assert "canned=" not in staff.page.url  # filled in place, not by the no-script GET
    staff.check("ticket after inserting a canned reply")
    manage = staff.page.locator("#staff-nav .dropdown-menu a").evaluate_all("links => links.map(a => a.href)")
    assert f"{base}/admin/settings" in manage
    for url in manage:
        staff.visit(url.removeprefix(base), url)

    assert len(customer.visited) + len(staff.visited) >= 15
    broken = {label: found for label, found in {**customer.visited, **staff.visited}.items() if found}
    assert broken == {}
