"""What row-level security costs: the ticket queue's first page and a refund form
submission, through the whole app in-process, connected as the owner (whom the policies
do not bind: RLS off) and as the application role (RLS on), interleaved request by
request in the same run, on a desk loaded by ``bench/seed.py`` (the big tenant
``perf-00``, 100,000 tickets of 1,000,000).

    .venv/bin/python bench/rls_cost.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_bench_reports \\
        [--role ledgerdesk_app] [--runs 300]

It migrates the database and runs ``flask db grant-app-role`` first (as the owner).
"""

import argparse
import itertools
import re
import statistics
import time

import flask_migrate
from sqlalchemy.engine import make_url

import crm
from crm.extensions import db
from tenants import roles

SLUG = "perf-00"
AGENT = "agent0@perf-00.test"
AGENT_PASSWORD = "perf-agent-password"  # bench/seed.py's
TOKENS = re.compile(r'name="(csrf_token|submission_token)" type="hidden" value="([^"]+)"')


def app_for(url: str):
    return crm.create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": None, "RATELIMIT_ENABLED": False, "TESTING": False}
    )


def signed_in(app):
    client = app.test_client()
    page = client.get(f"/t/{SLUG}/login").text
    token = TOKENS.search(page).group(2)
    response = client.post(
        f"/t/{SLUG}/login", data={"csrf_token": token, "email": AGENT, "password": AGENT_PASSWORD}
    )
    assert response.status_code == 302, response.status_code
    return client


def submission(app, serial: int):
    """A fresh customer's form page, ready to post (the GET is not timed)."""
    client = app.test_client()
    tokens = dict(TOKENS.findall(client.get(f"/t/{SLUG}/refund").text))
    fields = {
        "name": "王小明",
        "phone": f"139{serial:08d}",
        "reason": "unused_balance",
        "description": "号码已停用，请退还剩余预存款。",
        "amount": "99.00",
        "currency": "CNY",
        "consent": "y",
        "website": "",
    }
    return client, {**tokens, **fields}


def timed(request, path: str, *, status: int = 200, **kwargs) -> float:
    started = time.perf_counter()
    response = request(path, **kwargs)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == status, (path, response.status_code)
    return elapsed


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--role", default="ledgerdesk_app")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    owner = app_for(args.database_url)
    with owner.app_context():
        flask_migrate.upgrade()
        with db.engine.begin() as connection:
            roles.grant_app_role(connection, args.role)
        db.session.execute(db.text("UPDATE tenant_settings SET form_submissions_per_hour = 100000000"))
        db.session.commit()
    role_url = make_url(args.database_url).set(username=args.role, password=None)
    apps = {
        "RLS off (owner)": owner,
        "RLS on (app role)": app_for(role_url.render_as_string(hide_password=False)),
    }
    staff = {label: signed_in(app) for label, app in apps.items()}
    queue: dict[str, list[float]] = {label: [] for label in apps}
    form: dict[str, list[float]] = {label: [] for label in apps}
    for client in staff.values():  # warm up
        for _ in range(10):
            client.get(f"/t/{SLUG}/tickets")
    serial = itertools.count()
    for _run in range(args.runs):
        for label, app in apps.items():
            queue[label].append(timed(staff[label].get, f"/t/{SLUG}/tickets"))
            client, data = submission(app, next(serial))
            form[label].append(timed(client.post, f"/t/{SLUG}/refund", data=data, status=302))
    print(f"{args.runs} runs each, interleaved")
    for name, results in (("queue first page", queue), ("refund form submission", form)):
        off_median, off_p95 = summary(results["RLS off (owner)"])
        on_median, on_p95 = summary(results["RLS on (app role)"])
        print(
            f"{name}: off median {off_median:.2f} ms p95 {off_p95:.2f} ms; "
            f"on median {on_median:.2f} ms p95 {on_p95:.2f} ms; "
            f"on/off median {on_median / off_median:.3f}, p95 {on_p95 / off_p95:.3f}"
        )


if __name__ == "__main__":
    main()
