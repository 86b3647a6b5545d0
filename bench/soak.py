"""Soak: the whole app as deployed (gunicorn, rq workers with the scheduler, PostgreSQL,
Redis, a mail server) under mixed traffic for ``--minutes``, with one worker killed
half-way; then checks that nothing was lost on the way (issue 16).

It starts, all on loopback:
- an SMTP server in this process (aiosmtpd, as in tests/mail.py); SMTP_URL points at it;
- gunicorn with 4 sync workers (``wsgi:app``) on a free port, TRUSTED_PROXIES=1: each
  simulated customer sends its own X-Forwarded-For, so the per-address limits see
  thousands of people rather than one;
- 2 rq workers (``flask --app wsgi jobs worker``, with the scheduler) on a queue of the
  soak's own (``JOBS_QUEUE=soak-<random>``), each in its own process group.
The database (default ``ledgerdesk_soak``; its name must contain ``soak``) is dropped and
created afresh with ``createdb``, migrated with ``flask db upgrade``, and given
``--tenants`` tenants, each with an admin, a manager and an agent, through ``flask
tenants create`` and ``flask users create``. Each admin then signs in and raises the
tenant's ``form_submissions_per_hour`` on the settings page. Redis db 8 is flushed.

Traffic, from ``--customers`` customer threads and ``--staff`` staff threads (plain
http.client, a cookie jar per simulated browser, ``--think`` seconds between requests):
- refund requests on the hosted form (GET, then a multipart POST, most with a small real
  PDF), then the receipt page; a customer who gave an email gets the tracking link from
  the receipt email the SMTP server received, the others from the receipt page;
- free-trial requests (GET, POST, receipt);
- customers coming back: the tracking page, a reply (some with a PDF), the page again;
- staff: sign in, the queue, a ticket, a reply (some with a PDF) or a resolution (preview
  then send, "no refund was requested"), and after 15–30 of those, sign out.
Half-way it kills one rq worker's process group (the worker and, if it holds the
scheduler lock, its scheduler) with SIGKILL, as a container's OOM kill would, and starts
a new worker.

At the end it lets the queue drain (up to a minute) and checks, printing each and
exiting 1 if any fails: no 5xx and no request left without an answer; form receipts
(302s) = tickets stored, and trial receipts = trial submissions stored; every outbox row
``sent`` and the SMTP server's count equal to them (a row left ``sending`` by the kill is
reported apart: by design it is shown to admins as interrupted and never resent on its
own); ``flask audit verify`` for every tenant; no gaps in any chain (seq 1..N, head N,
inbox empty); each gunicorn and rq worker's RSS (VmRSS) growing under 10% from the end
of the warm-up to the end. It prints p50/p99 latency per kind of request, and reports
without judging how long the queue went without an rq scheduler after the kill, when
audit checkpoints were signed, and how often ``occurred_at`` goes back along a chain.

    .venv/bin/python bench/soak.py [--minutes 10] [--commit HEAD] [--json soak.json]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_soak]
        [--redis-url redis://127.0.0.1:6379/8] [--tenants 2] [--customers 4] [--staff 2]

``--commit REV`` runs the app from a ``git archive`` of REV (catalogs compiled) rather than
from the working tree, which other people may be editing while the soak runs: a template
changed mid-run is read by the workers that have not cached it yet. Logs (gunicorn's,
each rq worker's) and uploads stay in a temporary directory printed at the start.
"""

import argparse
import base64
import email
import email.policy
import http.client
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import psycopg
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis import Redis
from rq import Queue, Worker
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from form_load import (  # a sibling script
    Customers,
    Server,
    customer_address,
    free_port,
    quantile,
    wait_until_ready,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET_KEY = "soak-bench-secret-key-not-for-production"
PASSWORD = "soak-staff-password-1"
STAFF = (("admin", "Ada Admin"), ("manager", "Min Manager"), ("agent", "Alex Agent"))
# Links in emails are built on it; the soak follows only their paths, as a proxy would.
PUBLIC_BASE_URL = "https://desk.soak.test"
RSS_GOAL = 0.10
DRAIN_SECONDS = 60
SAMPLE_SECONDS = 15
CUSTOMER_REPLIES_PER_TICKET = 4  # well under the tracking page's 20 posts an hour per link
TRACK_LINK = re.compile(r"https?://\S+?(/t/([a-z0-9-]+)/track/[A-Za-z0-9_-]+)")
REFERENCE = re.compile(r"\b[A-Z]{1,8}-(\d+)\b")
RECEIPT_PATH = re.compile(r"/refund/receipt/(\d+)$")
STAFF_REPLIES = (
    "Thank you, we are checking the charges on your account and will come back to you.",
    "我们已收到您的材料，正在核对账单，请耐心等待。",
    "Could you confirm the last four digits of the card that was charged?",
)
CUSTOMER_REPLIES = (
    "Here is the bank statement showing the charge.",
    "补充一下：扣费时间是上个月 15 号，请核实。",
    "Any news on my request? The money is still missing.",
)


# --- a small real PDF ---------------------------------------------------------------------


def evidence_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (ASCII, no parentheses), with a correct xref table."""
    content = f"BT /F1 14 Tf 72 760 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]"
        b" /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- pages and forms ----------------------------------------------------------------------


@dataclass
class Form:
    action: str
    enctype: str
    fields: list[tuple[str, str]] = field(default_factory=list)

    def filled(self, **values: str) -> list[tuple[str, str]]:
        """The form's own fields (hidden tokens, defaults) with ``values`` typed over them;
        a name given as ``reply__body`` stands for ``reply-body``."""
        typed = {name.replace("__", "-"): value for name, value in values.items()}
        kept = [(name, value) for name, value in self.fields if name not in typed]
        return kept + list(typed.items())


class FormParser(HTMLParser):
    """The page's forms as a browser would submit them, without pressing any button."""

    def __init__(self, page_path: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_path = page_path
        self.forms: list[Form] = []
        self._text_of: str | None = None  # the textarea being read
        self._select: str | None = None
        self._chosen: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form":
            action = a.get("action") or self.page_path
            self.forms.append(Form(urlsplit(action).path, a.get("enctype", "")))
            return
        if not self.forms or not a.get("name"):
            if tag == "option" and self._select is not None:
                self._option(a)
            return
        form = self.forms[-1]
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("file", "submit", "button", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            form.fields.append((a["name"], a.get("value", "on" if kind in ("checkbox", "radio") else "")))
        elif tag == "textarea":
            self._text_of = a["name"]
            form.fields.append((a["name"], ""))
        elif tag == "select":
            self._select = a["name"]

    def _option(self, a: dict[str, str]) -> None:
        if self._select not in self._chosen or "selected" in a:
            self._chosen[self._select] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._text_of is not None and self.forms:
            name, text = self.forms[-1].fields[-1]
            self.forms[-1].fields[-1] = (name, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._text_of is not None:
            # A browser drops the newline right after <textarea> (WTForms writes one).
            name, text = self.forms[-1].fields[-1]
            self.forms[-1].fields[-1] = (name, text.removeprefix("\n").removeprefix("\r\n"))
            self._text_of = None
        elif tag == "select" and self._select is not None:
            if self.forms:
                self.forms[-1].fields.append((self._select, self._chosen.get(self._select, "")))
            self._select = None


@dataclass
class Page:
    path: str
    status: int
    location: str = ""
    text: str = ""

    def form(self, action_suffix: str) -> Form:
        parser = FormParser(self.path)
        parser.feed(self.text)
        for form in parser.forms:
            if form.action.endswith(action_suffix):
                return form
        raise LookupError(f"no form posting to …{action_suffix} on {self.path} ({self.status})")


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = f"soak{uuid.uuid4().hex}"
    parts = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, filename, content in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- what the clients saw -----------------------------------------------------------------


class Stats:
    """Every request's kind, status and latency, from all threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[tuple[float, float]]] = defaultdict(list)  # (when, ms)
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)
        self.server_errors: list[dict] = []  # 5xx, and requests that got no answer
        self.odd: list[dict] = []  # 4xx, or a status the flow did not expect

    def record(self, kind: str, method: str, path: str, status: int, seconds: float, error: str = "") -> None:
        with self.lock:
            self.statuses[kind][status] += 1
            if status:
                self.latencies[kind].append((time.monotonic(), seconds * 1000))
            if status >= 500 or status == 0:
                self.server_errors.append(
                    {
                        "at": utc_now(),
                        "kind": kind,
                        "request": f"{method} {path}",
                        "status": status,
                        "error": error,
                    }
                )

    def unexpected(self, kind: str, page: Page) -> None:
        with self.lock:
            self.odd.append({"at": utc_now(), "kind": kind, "path": page.path, "status": page.status})

    def client_error(self, where: str, error: Exception) -> None:
        """The simulated person could not go on (a page without the form it expected)."""
        with self.lock:
            self.odd.append({"at": utc_now(), "kind": where, "error": f"{type(error).__name__}: {error}"})

    @property
    def requests(self) -> int:
        with self.lock:
            return sum(sum(counts.values()) for counts in self.statuses.values())


def utc_now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


class Browser:
    """One person's browser: their cookies, address and language. A connection per
    request (gunicorn's sync workers close every connection)."""

    def __init__(self, port: int, stats: Stats, address: str, language: str) -> None:
        self.port, self.stats, self.address, self.language = port, stats, address, language
        self.cookies: dict[str, str] = {}

    def get(self, kind: str, path: str) -> Page:
        return self._send(kind, "GET", path, None, None)

    def post(
        self, kind: str, path: str, fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]] | None
    ) -> Page:
        """Urlencoded, or multipart when ``files`` is a list (even an empty one)."""
        if files is None:
            return self._send(
                kind, "POST", path, urlencode(fields).encode(), "application/x-www-form-urlencoded"
            )
        return self._send(kind, "POST", path, *multipart(fields, list(files)))

    def submit(self, kind: str, form: Form, files: list[tuple[str, str, bytes]] = (), **values: str) -> Page:
        """Send ``form`` as its page would: multipart if the form says so."""
        is_multipart = form.enctype == "multipart/form-data" or bool(files)
        return self.post(kind, form.action, form.filled(**values), files if is_multipart else None)

    def _send(self, kind: str, method: str, path: str, body: bytes | None, content_type: str | None) -> Page:
        headers = {"X-Forwarded-For": self.address, "Accept-Language": self.language}
        if content_type:
            headers["Content-Type"] = content_type
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        began = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            finally:
                connection.close()
        except (OSError, http.client.HTTPException) as error:
            self.stats.record(
                kind, method, path, 0, time.perf_counter() - began, f"{type(error).__name__}: {error}"
            )
            return Page(path, 0)
        self.stats.record(kind, method, path, response.status, time.perf_counter() - began)
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                self._keep_cookie(value)
        location = urlsplit(response.getheader("Location") or "")
        target = location.path + (f"?{location.query}" if location.query else "")
        return Page(path, response.status, target, data.decode("utf-8", "replace"))

    def _keep_cookie(self, header: str) -> None:
        pair, _, attributes = header.partition(";")
        name, _, value = pair.strip().partition("=")
        expired = "max-age=0" in attributes.lower().replace(" ", "") or "1970" in attributes
        if expired or not value:
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value


# --- the mail server ----------------------------------------------------------------------


class Mailbox:
    """What the SMTP server received, and the tracking link of each ticket's first email."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, str]] = []  # (recipient, subject), one per message
        self.links: dict[tuple[str, int], str] = {}  # (slug, ticket number) -> path

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it by this name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        subject = str(message["Subject"] or "")
        part = message.get_body(("plain",)) if message.is_multipart() else message
        body = part.get_content() if part is not None else ""
        link, reference = TRACK_LINK.search(body), REFERENCE.search(subject)
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.received.append((recipient, subject))
            if link and reference:
                self.links.setdefault((link.group(2), int(reference.group(1))), link.group(1))
        return "250 Message accepted for delivery"

    def link_of(self, slug: str, number: int) -> str | None:
        with self.lock:
            return self.links.get((slug, number))

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.received)


# --- tickets the soak made ----------------------------------------------------------------


@dataclass
class Case:
    """A refund request a simulated customer filed, as the soak knows it."""

    slug: str
    number: int
    address: str
    language: str
    email: str | None
    link: str | None = None  # the tracking page's path
    link_from: str = ""  # "email" or "receipt page"
    resolved: bool = False
    busy: bool = False  # someone (customer or staff) is on it now
    customer_replies: int = 0


class Desk:
    """The tickets and leads made so far, shared by the threads; one person on a ticket at
    a time, so a customer's reply never races an agent's resolution."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.lock = threading.Lock()
        self.mailbox = mailbox
        self.cases: list[Case] = []
        self.receipts: Counter[str] = Counter()  # slug -> refund form 302s
        self.trial_receipts: Counter[str] = Counter()  # slug -> trial form 302s

    def add(self, case: Case) -> None:
        with self.lock:
            self.cases.append(case)

    def for_staff(self, slug: str, rng: random.Random) -> Case | None:
        with self.lock:
            open_cases = [c for c in self.cases if c.slug == slug and not c.resolved and not c.busy]
            return self._take(open_cases, rng)

    def for_customer(self, rng: random.Random) -> Case | None:
        with self.lock:
            candidates = []
            for case in self.cases:
                if case.resolved or case.busy or case.customer_replies >= CUSTOMER_REPLIES_PER_TICKET:
                    continue
                if case.link is None and case.email:
                    case.link = self.mailbox.link_of(case.slug, case.number)
                    case.link_from = "email" if case.link else ""
                if case.link:
                    candidates.append(case)
            return self._take(candidates, rng)

    @staticmethod
    def _take(cases: list[Case], rng: random.Random) -> Case | None:
        if not cases:
            return None
        case = rng.choice(cases)
        case.busy = True
        return case

    def release(self, case: Case) -> None:
        with self.lock:
            case.busy = False

    def links_by_source(self) -> Counter[str]:
        """Where each ticket's tracking link came from (or would, had its customer come back)."""
        with self.lock:
            return Counter(
                case.link_from
                or ("email" if case.email and self.mailbox.link_of(case.slug, case.number) else "none")
                for case in self.cases
            )


# --- processes ----------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(found)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


@dataclass
class App:
    """Where the app's processes run from (a checkout) and the environment they get."""

    root: Path
    env: dict[str, str]

    def start(self, command: list[str], log: Path) -> subprocess.Popen:
        """A long-running process in its own process group (it and whatever it forks)."""
        return subprocess.Popen(
            command,
            cwd=self.root,
            env=self.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def flask(self, *args: str) -> list[str]:
        return [str(BIN / "flask"), "--app", "wsgi", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        """``flask --app wsgi ARGS``, to its end."""
        return subprocess.run(self.flask(*args), cwd=self.root, env=self.env, capture_output=True, text=True)


def snapshot(commit: str, work: Path) -> Path:
    """The checkout's files at ``commit`` (``git archive``, which changes nothing in the
    repository) with compiled catalogs: edits made in the checkout while the soak runs
    cannot change what runs."""
    root = work / f"app-{commit}"
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    subprocess.run(
        [str(BIN / "pybabel"), "-q", "compile", "-d", str(root / "crm" / "translations")], check=True
    )
    return root


@dataclass
class RqWorker:
    name: str
    process: subprocess.Popen
    log: Path
    started: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def scheduler(self) -> int | None:
        """The scheduler process this worker forked, if it holds the scheduler lock."""
        children = children_of(self.pid)
        return children[0] if children else None

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.pid, signal.SIGTERM)  # rq's warm shutdown; the scheduler releases its lock
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait()


def start_rq_worker(name: str, app: App, work: Path) -> RqWorker:
    log = work / f"{name}.log"
    return RqWorker(name, app.start(app.flask("jobs", "worker"), log), log, time.monotonic())


def wait_for_workers(queue: Queue, pids: set[int], work: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if pids <= {worker.pid for worker in Worker.all(queue=queue)}:
            return
        time.sleep(0.5)
    sys.exit(f"rq workers {sorted(pids)} did not register: see their logs in {work}")


def start_gunicorn(app: App, work: Path, port: int) -> Server:
    log = work / "gunicorn.log"
    command = [str(BIN / "gunicorn"), "--workers", "4", "--bind", f"127.0.0.1:{port}"]
    process = app.start([*command, "--log-level", "warning", "wsgi:app"], log)
    server = Server("app", port, process, log)
    wait_until_ready(server, "/healthz", seconds=90, ready=lambda: len(children_of(process.pid)) == 4)
    return server


# --- setting up ---------------------------------------------------------------------------


def fresh_database(conninfo: str, name: str) -> None:
    """Drop and create the soak's own database, so every count is this run's."""
    if "soak" not in name:
        sys.exit(f"the database name must contain 'soak' (it is dropped first): {name!r}")
    parts = make_url(conninfo)
    where = [
        "-h",
        parts.host or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
    ]
    subprocess.run(["dropdb", *where, "--if-exists", "--force", name], check=True)
    subprocess.run(["createdb", *where, name], check=True)


def create_tenants(app: App, slugs: list[str]) -> None:
    """Through the operator's commands, as a deployment would: each tenant, then its admin,
    manager and agent (each command a new process, about two seconds of imports: four run
    at a time)."""
    for number, slug in enumerate(slugs, start=1):
        done = app.run("tenants", "create", slug, "--name", f"华信通讯 Soak Telecom {number}")
        if done.returncode:
            sys.exit(f"flask tenants create {slug}: {done.stderr or done.stdout}")
    commands = [
        app.flask(
            "users",
            "create",
            "--tenant",
            slug,
            "--email",
            f"{role}@{slug}.test",
            "--role",
            role,
            "--name",
            name,
            "--password",
            PASSWORD,
        )
        for slug in slugs
        for role, name in STAFF
    ]
    for start in range(0, len(commands), 4):
        running = [
            subprocess.Popen(
                command,
                cwd=app.root,
                env=app.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for command in commands[start : start + 4]
        ]
        for process in running:
            output = process.communicate()[0]
            if process.returncode:
                sys.exit(f"flask users create: {output}")


def sign_in(browser: Browser, slug: str, email_address: str) -> bool:
    page = browser.get("staff login GET", f"/t/{slug}/login")
    if page.status != 200:
        return False
    page = browser.submit("staff login POST", page.form("/login"), email=email_address, password=PASSWORD)
    if page.status != 302:
        browser.stats.unexpected("staff login POST", page)
    return page.status == 302


def raise_form_limit(port: int, stats: Stats, slug: str) -> None:
    """The admin raises the per-address limit on the settings page, as an admin would."""
    admin = Browser(port, stats, "198.18.1.1", "en-GB,en;q=0.9")
    if not sign_in(admin, slug, f"admin@{slug}.test"):
        sys.exit(f"the admin of {slug} could not sign in")
    page = admin.get("admin settings GET", f"/t/{slug}/admin/settings")
    page = admin.submit(
        "admin settings POST", page.form("/admin/settings"), form_submissions_per_hour="10000"
    )
    if page.status != 302:
        sys.exit(f"{slug}: the settings page answered {page.status}")


# --- the traffic --------------------------------------------------------------------------


@dataclass
class Traffic:
    port: int
    stats: Stats
    desk: Desk
    slugs: list[str]
    think: float
    stop: threading.Event
    serials: itertools.count = field(default_factory=lambda: itertools.count(1))

    def pause(self, rng: random.Random) -> None:
        self.stop.wait(rng.uniform(0.5, 1.5) * self.think)


def customer_loop(traffic: Traffic, index: int, seed: int) -> None:
    """New refund requests, free-trial requests, and customers coming back to reply."""
    rng = random.Random(seed * 1000 + index)
    people = Customers(seed=seed * 1000 + index)
    while not traffic.stop.is_set():
        roll = rng.random()
        try:
            if roll < 0.35:
                case = traffic.desk.for_customer(rng)
                if case is not None:
                    try:
                        customer_reply(traffic, case, rng)
                    finally:
                        traffic.desk.release(case)
                    continue
            if roll < 0.55:
                trial_request(traffic, people, rng)
            else:
                refund_request(traffic, people, rng)
        except LookupError as error:
            traffic.stats.client_error("customer", error)


def refund_request(traffic: Traffic, people: Customers, rng: random.Random) -> None:
    values, language = people.fields()
    serial = next(traffic.serials)
    slug = rng.choice(traffic.slugs)
    browser = Browser(traffic.port, traffic.stats, customer_address(serial), language)
    page = browser.get("refund form GET", f"/t/{slug}/refund")
    if page.status != 200:
        return
    traffic.pause(rng)
    files = [
        (
            "attachments",
            f"invoice-{serial}.pdf",
            evidence_pdf(f"Invoice {serial} amount {values['amount'] or 0}"),
        )
        for _ in range(rng.choice((0, 1, 1, 1, 2)))
    ]
    page = browser.submit("refund form POST", page.form("/refund"), files, **values)
    receipt = RECEIPT_PATH.search(page.location) if page.status == 302 else None
    if receipt is None:
        traffic.stats.unexpected("refund form POST", page)
        return
    with traffic.desk.lock:
        traffic.desk.receipts[slug] += 1
    case = Case(slug, int(receipt.group(1)), browser.address, language, values["email"] or None)
    page = browser.get("refund receipt GET", page.location)
    link = TRACK_LINK.search(page.text)
    if case.email is None and link:  # without an email, the receipt page is the only copy
        case.link, case.link_from = link.group(1), "receipt page"
    traffic.desk.add(case)
    traffic.pause(rng)


def trial_request(traffic: Traffic, people: Customers, rng: random.Random) -> None:
    values, language = people.fields()
    slug = rng.choice(traffic.slugs)
    browser = Browser(traffic.port, traffic.stats, customer_address(next(traffic.serials)), language)
    page = browser.get("trial form GET", f"/t/{slug}/trial?utm_source=soak&utm_medium=cpc")
    if page.status != 200:
        return
    traffic.pause(rng)
    typed = {
        "name": values["name"],
        "phone": values["phone"],
        "email": values["email"],
        "company": rng.choice(("", "华信外呼科技", "Northwind Calls Ltd")),
        "need": rng.choice(("", "20 seats, from next month", "需要 5 个外呼坐席，下周开始试用")),
        "consent_contact": "y",
    }
    if rng.random() < 0.5:
        typed["consent_marketing"] = "y"
    page = browser.submit("trial form POST", page.form("/trial"), **typed)
    if page.status != 302:
        traffic.stats.unexpected("trial form POST", page)
        return
    with traffic.desk.lock:
        traffic.desk.trial_receipts[slug] += 1
    browser.get("trial receipt GET", page.location)
    traffic.pause(rng)


def customer_reply(traffic: Traffic, case: Case, rng: random.Random) -> None:
    browser = Browser(traffic.port, traffic.stats, case.address, case.language)
    page = browser.get("tracking GET", case.link)
    if page.status != 200:
        traffic.stats.unexpected("tracking GET", page)
        return
    traffic.pause(rng)
    files = (
        [("attachments", "statement.pdf", evidence_pdf(f"Statement {case.number}"))]
        if rng.random() < 0.4
        else []
    )
    page = browser.submit(
        "tracking reply POST", page.form("/reply"), files, body=rng.choice(CUSTOMER_REPLIES)
    )
    if page.status != 302:
        traffic.stats.unexpected("tracking reply POST", page)
        return
    case.customer_replies += 1
    browser.get("tracking GET", page.location)
    traffic.pause(rng)


def staff_loop(traffic: Traffic, index: int, seed: int) -> None:
    """An agent or a manager of one tenant: signs in, works 15–30 tickets, signs out."""
    rng = random.Random(seed * 2000 + index)
    slug = traffic.slugs[index % len(traffic.slugs)]
    while not traffic.stop.is_set():
        try:
            staff_session(traffic, slug, index, rng)
        except LookupError as error:
            traffic.stats.client_error("staff", error)


def staff_session(traffic: Traffic, slug: str, index: int, rng: random.Random) -> None:
    """Sign in as the agent or the manager, work 15–30 tickets, sign out."""
    role = rng.choice(("agent", "manager"))
    language = rng.choice(("en-GB,en;q=0.9", "zh-CN,zh;q=0.9"))
    browser = Browser(traffic.port, traffic.stats, f"198.18.0.{index + 1}", language)
    if not sign_in(browser, slug, f"{role}@{slug}.test"):
        traffic.stop.wait(5)
        return
    page = None
    for _ in range(rng.randint(15, 30)):
        if traffic.stop.is_set():
            break
        page = browser.get("staff queue GET", f"/t/{slug}/tickets")
        traffic.pause(rng)
        case = traffic.desk.for_staff(slug, rng)
        if case is None:
            continue
        try:
            page = work_ticket(traffic, browser, case, rng) or page
        finally:
            traffic.desk.release(case)
        traffic.pause(rng)
    if page is not None and page.status == 200:
        browser.submit("staff logout POST", page.form("/logout"))


def work_ticket(traffic: Traffic, browser: Browser, case: Case, rng: random.Random) -> Page | None:
    """Open the ticket, then reply or resolve it; the page the agent ends on."""
    path = f"/t/{case.slug}/tickets/{case.number}"
    page = browser.get("staff ticket GET", path)
    if page.status != 200:
        traffic.stats.unexpected("staff ticket GET", page)
        return None
    traffic.pause(rng)
    if rng.random() < 0.3:
        preview = browser.submit(
            "staff resolve preview POST",
            page.form("/resolve"),
            resolve__body="We have refunded the unused balance; it reaches your account within 5 days.",
            resolve__no_refund_requested="y",
            step="preview",
        )
        if preview.status != 200:
            traffic.stats.unexpected("staff resolve preview POST", preview)
            return None
        traffic.pause(rng)
        sent = browser.submit("staff resolve send POST", preview.form("/resolve"), step="send")
        if sent.status != 302:
            traffic.stats.unexpected("staff resolve send POST", sent)
            return None
        case.resolved = True
    else:
        files = []
        if rng.random() < 0.2:
            files = [
                ("reply-attachments", "refund-calculation.pdf", evidence_pdf(f"Calculation {case.number}"))
            ]
        sent = browser.submit(
            "staff reply POST", page.form("/reply"), files, reply__body=rng.choice(STAFF_REPLIES)
        )
        if sent.status != 302:
            traffic.stats.unexpected("staff reply POST", sent)
            return None
    return browser.get("staff ticket GET", sent.location)


# --- memory and the scheduler -------------------------------------------------------------


class Watch:
    """Every SAMPLE_SECONDS: VmRSS of each gunicorn worker, of each rq worker and of the
    scheduler process a worker forks while it holds the scheduler lock; the load average."""

    def __init__(self, server: Server, workers: list[RqWorker], began: float) -> None:
        self.server, self.workers, self.began = server, workers, began
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def snapshot(self) -> dict:
        rss = {f"gunicorn worker {pid}": rss_kib(pid) for pid in children_of(self.server.process.pid)}
        for worker in list(self.workers):
            if worker.process.poll() is None:
                rss[f"{worker.name} (pid {worker.pid})"] = rss_kib(worker.pid)
                if (scheduler := worker.scheduler()) is not None:
                    rss[f"{worker.name} scheduler (pid {scheduler})"] = rss_kib(scheduler)
        sample = {"t": round(time.monotonic() - self.began, 1), "load": os.getloadavg()[0], "rss_kib": rss}
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.snapshot()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def scheduler_back(self, kill: dict) -> tuple[str, float] | None:
        """The first sample after the kill in which another worker has forked a scheduler:
        (that worker, seconds after the kill)."""
        for sample in self.samples:
            for name in sample["rss_kib"]:
                owner = name.partition(" scheduler ")[0]
                if sample["t"] > kill["elapsed"] and " scheduler " in name and owner != kill["victim"]:
                    return owner, sample["t"] - kill["elapsed"]
        return None


@dataclass
class RssRow:
    process: str
    start_kib: int
    end_kib: int
    peak_kib: int
    start_at: float
    end_at: float

    @property
    def growth(self) -> float:
        return (self.end_kib - self.start_kib) / self.start_kib


def rss_rows(samples: list[dict], starts: dict[str, float], end_at: float) -> list[RssRow]:
    """For each process: its RSS at its first sample once its warm-up is over, at its last
    sample by ``end_at`` (the end of the traffic, or its death), and its peak between."""
    rows = []
    for name in dict.fromkeys(name for sample in samples for name in sample["rss_kib"]):
        owner = name.split(" (pid")[0].removesuffix(" scheduler")
        start_at = starts.get(owner, starts["default"])
        seen = [
            (sample["t"], sample["rss_kib"][name])
            for sample in samples
            if sample["rss_kib"].get(name) and start_at <= sample["t"] <= end_at
        ]
        if len(seen) >= 2:
            peak = max(rss for _, rss in seen)
            rows.append(RssRow(name, seen[0][1], seen[-1][1], peak, seen[0][0], seen[-1][0]))
    return rows


# --- the deployment -----------------------------------------------------------------------


@dataclass
class Deployment:
    """Everything the soak started, and how to reach it."""

    work: Path
    app: App
    conninfo: str
    slugs: list[str]
    mailbox: Mailbox
    smtp: Controller
    port: int
    queue: Queue
    server: Server | None = None
    workers: list[RqWorker] = field(default_factory=list)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.server is not None:
            self.server.stop()
        self.smtp.stop()


def deploy(args: argparse.Namespace, work: Path, app_root: Path) -> Deployment:
    """A fresh database with its tenants and staff, an empty Redis db, the mail server;
    the environment every process of the app gets."""
    url = make_url(args.database_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    fresh_database(conninfo, url.database)
    redis = Redis.from_url(args.redis_url)
    redis.flushdb()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    queue = Queue(f"soak-{uuid.uuid4().hex[:8]}", connection=redis)
    env = {key: value for key, value in os.environ.items() if key not in ("CRM_ENV", "FLASK_APP")}
    env.update(
        PYTHONPATH=str(app_root),  # before the editable install's path to this checkout
        DATABASE_URL=url.render_as_string(hide_password=False),
        REDIS_URL=args.redis_url,
        SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
        JOBS_QUEUE=queue.name,
        SECRET_KEY=SECRET_KEY,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        TRUSTED_PROXIES="1",
        # Files and keys of the soak's own, not the checkout's instance/.
        UPLOAD_FOLDER=str(work / "uploads"),
        EXPORT_FOLDER=str(work / "exports"),
        IMPORT_FOLDER=str(work / "imports"),
        AUDIT_SIGNING_KEY=base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode(),
        # A checkpoint every 2 minutes (default 10), so several are signed during the run.
        AUDIT_CHECKPOINT_MINUTES="2",
    )
    slugs = [f"soak-{number}" for number in range(1, args.tenants + 1)]
    app = App(app_root, env)
    deployment = Deployment(work, app, conninfo, slugs, mailbox, smtp, free_port(), queue)
    began = time.monotonic()
    upgrade = app.run("db", "upgrade")
    if upgrade.returncode:
        deployment.stop()
        sys.exit(f"flask db upgrade failed:\n{upgrade.stderr}")
    create_tenants(app, slugs)
    print(f"database {url.database}: migrated, {', '.join(slugs)} and their staff made in", end=" ")
    print(f"{time.monotonic() - began:.0f} s")
    return deployment


def start_app(deployment: Deployment, stats: Stats) -> None:
    """gunicorn and two rq workers; then each admin raises the per-address form limit."""
    deployment.server = start_gunicorn(deployment.app, deployment.work, deployment.port)
    deployment.workers.extend(start_rq_worker(f"rq-{n}", deployment.app, deployment.work) for n in (1, 2))
    wait_for_workers(deployment.queue, {worker.pid for worker in deployment.workers}, deployment.work)
    for slug in deployment.slugs:
        raise_form_limit(deployment.port, stats, slug)
    print(
        f"gunicorn on :{deployment.port}, workers {children_of(deployment.server.process.pid)};"
        f" rq workers {[worker.pid for worker in deployment.workers]} on {deployment.queue.name};"
        f" SMTP on :{deployment.smtp.port}"
    )


def kill_one_worker(deployment: Deployment, began: float) -> dict:
    """SIGKILL the process group of the worker holding the scheduler (else the first), as
    an OOM kill of its container would, then start a new worker; what was done."""
    alive = [worker for worker in deployment.workers if worker.process.poll() is None]
    victim = next((worker for worker in alive if worker.scheduler() is not None), alive[0])
    scheduler = victim.scheduler()
    at, elapsed = datetime.now(UTC), time.monotonic() - began
    os.killpg(victim.pid, signal.SIGKILL)
    victim.process.wait()
    replacement = start_rq_worker(f"rq-{len(deployment.workers) + 1}", deployment.app, deployment.work)
    deployment.workers.append(replacement)
    wait_for_workers(deployment.queue, {replacement.pid}, deployment.work)
    print(
        f"  {elapsed:5.0f} s: killed {victim.name} (pid {victim.pid}, scheduler {scheduler}),"
        f" started {replacement.name}"
    )
    return {
        "at": at.isoformat(),
        "elapsed": elapsed,
        "victim": victim.name,
        "pid": victim.pid,
        "scheduler_pid": scheduler,
        "replacement": replacement.name,
        "replacement_pid": replacement.pid,
        "replacement_started": replacement.started - began,
    }


# --- the run ------------------------------------------------------------------------------


@dataclass
class Run:
    """What happened during the traffic, for the checks and the report."""

    began: float
    began_at: datetime
    seconds: float
    warm_up: float
    kill: dict
    starts: dict[str, float]  # process owner -> when its warm-up ended ("default" for all others)
    end_sample: dict
    watch: Watch
    gunicorn_pids: list[int]
    drain_seconds: float = 0.0
    gunicorn_pids_end: list[int] = field(default_factory=list)


def drive(deployment: Deployment, stats: Stats, desk: Desk, args: argparse.Namespace) -> Run:
    """The traffic for ``--minutes``, the kill half-way, then the drain."""
    total = args.minutes * 60
    warm_up = min(60.0, total * 0.15)
    gunicorn_pids = children_of(deployment.server.process.pid)
    stop = threading.Event()
    began, began_at = time.monotonic(), datetime.now(UTC)
    watch = Watch(deployment.server, deployment.workers, began)
    traffic = Traffic(deployment.port, stats, desk, deployment.slugs, args.think, stop)
    threads = [
        threading.Thread(target=customer_loop, args=(traffic, n, args.seed), daemon=True)
        for n in range(args.customers)
    ] + [
        threading.Thread(target=staff_loop, args=(traffic, n, args.seed), daemon=True)
        for n in range(args.staff)
    ]
    for thread in threads:
        thread.start()
    watch.start()
    print(f"traffic for {args.minutes:g} min from {args.customers} customer and {args.staff} staff threads")
    kill: dict = {}
    starts = {"default": warm_up}
    next_report = 60.0
    try:
        while (elapsed := time.monotonic() - began) < total:
            if not kill and elapsed >= total / 2:
                kill = kill_one_worker(deployment, began)
                starts[kill["replacement"]] = kill["replacement_started"] + min(30.0, warm_up)
            if elapsed >= next_report:
                print(
                    f"  {elapsed:5.0f} s: {stats.requests} requests, {sum(desk.receipts.values())} tickets,"
                    f" {sum(desk.trial_receipts.values())} leads, {deployment.mailbox.count} emails received,"
                    f" {len(stats.server_errors)} 5xx or unanswered, load {os.getloadavg()[0]:.1f}"
                )
                next_report += 60
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
    seconds = time.monotonic() - began
    run = Run(began, began_at, seconds, warm_up, kill, starts, watch.snapshot(), watch, gunicorn_pids)
    print(f"traffic stopped after {seconds:.0f} s; draining (up to {DRAIN_SECONDS} s)")
    run.drain_seconds = drain(deployment.conninfo, deployment.queue, deployment.mailbox)
    watch.stop()
    run.gunicorn_pids_end = children_of(deployment.server.process.pid)
    return run


def drain(conninfo: str, queue: Queue, mailbox: Mailbox) -> float:
    """Wait, up to DRAIN_SECONDS, until no outbox message is queued, no audit event waits
    in the inbox, the job queue is empty and nothing has moved for 3 s; the seconds taken."""
    began = time.monotonic()
    last, steady_since = None, time.monotonic()
    while time.monotonic() - began < DRAIN_SECONDS:
        with psycopg.connect(conninfo) as connection:
            queued, inbox = connection.execute(
                "SELECT (SELECT count(*) FROM outbox_messages WHERE status = 'queued'),"
                " (SELECT count(*) FROM audit_inbox)"
            ).fetchone()
        state = (queued, inbox, queue.count, mailbox.count)
        if state != last:
            last, steady_since = state, time.monotonic()
        if queued == 0 and inbox == 0 and queue.count == 0 and time.monotonic() - steady_since >= 3:
            break
        time.sleep(0.5)
    return time.monotonic() - began


# --- the checks ---------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    value: str
    ok: bool | None  # None: reported, not judged


def outbox_checks(conninfo: str, mailbox: Mailbox, kill: dict) -> tuple[list[Check], dict]:
    """Every outbox row sent, and the mail server holding exactly those; a row left
    ``sending`` by the kill is reported apart, with whether it reached the server."""
    with psycopg.connect(conninfo) as connection:
        statuses = dict(
            connection.execute("SELECT status, count(*) FROM outbox_messages GROUP BY 1").fetchall()
        )
        sent_pairs = Counter(
            connection.execute(
                "SELECT to_address, subject FROM outbox_messages WHERE status = 'sent'"
            ).fetchall()
        )
        not_sent = connection.execute(
            "SELECT m.id, t.slug, m.status, m.attempts, m.last_error, m.to_address, m.subject,"
            " m.created_at, m.last_attempt_at FROM outbox_messages m JOIN tenants t ON t.id = m.tenant_id"
            " WHERE m.status <> 'sent' ORDER BY m.id"
        ).fetchall()
    sent, written = statuses.get("sent", 0), sum(statuses.values())
    received = Counter(mailbox.received)
    kill_at = datetime.fromisoformat(kill["at"]) if kill else None
    interrupted, lost = [], []
    for message_id, slug, status, attempts, last_error, to_address, subject, created, tried in not_sent:
        entry = {
            "id": message_id,
            "tenant": slug,
            "status": status,
            "attempts": attempts,
            "last_error": last_error,
            "created_at": created.isoformat(),
            "last_attempt_at": tried.isoformat() if tried else None,
        }
        if status == "sending" and kill_at and tried:
            # It reached the server before its worker died if the server holds one more
            # copy of (to, subject) than there are rows marked sent.
            entry["reached_smtp_server"] = received[(to_address, subject)] > sent_pairs[(to_address, subject)]
            entry["seconds_before_kill"] = round((kill_at - tried).total_seconds(), 2)
            interrupted.append(entry)
        else:
            lost.append(entry)
    reached = sum(entry["reached_smtp_server"] for entry in interrupted)
    checks = [
        Check(
            "emails queued = emails sent (outbox rows `sent` / rows written)",
            f"{sent} / {written}" + (f", {len(interrupted)} interrupted" if interrupted else ""),
            not lost,
        ),
        Check(
            "outbox rows left `sending` by the SIGKILL (shown as interrupted, never resent by themselves)",
            f"{len(interrupted)}, {reached} of them reached the SMTP server",
            all(0 <= entry["seconds_before_kill"] < 25 for entry in interrupted),
        ),
        Check(
            "SMTP server received = rows sent (+ interrupted rows that reached it)",
            f"{mailbox.count} = {sent} + {reached}",
            mailbox.count == sent + reached,
        ),
    ]
    details = {"statuses": statuses, "written": written, "smtp_received": mailbox.count}
    return checks, {**details, "interrupted": interrupted, "not_sent": lost}


def chain_report(conninfo: str, began_at: datetime) -> list[dict]:
    """Per tenant: the chain's seq range against its head, events still in the inbox,
    checkpoint times, and how often ``occurred_at`` goes back along the chain."""
    with psycopg.connect(conninfo) as connection:
        rows = connection.execute(
            "SELECT t.slug, count(e.seq), coalesce(min(e.seq), 0), coalesce(max(e.seq), 0),"
            " (SELECT h.seq FROM audit_heads h WHERE h.tenant_id = t.id),"
            " (SELECT count(*) FROM audit_inbox i WHERE i.tenant_id = t.id)"
            " FROM tenants t LEFT JOIN audit_events e ON e.tenant_id = t.id"
            " GROUP BY t.id, t.slug ORDER BY t.slug"
        ).fetchall()
        backs = dict(
            (slug, (count, maximum))
            for slug, count, maximum in connection.execute(
                "SELECT t.slug, count(*) FILTER (WHERE back > 0), coalesce(max(back), 0) FROM ("
                "  SELECT tenant_id, 1000 * extract(epoch FROM"
                "    lag(occurred_at) OVER (PARTITION BY tenant_id ORDER BY seq) - occurred_at) AS back"
                "  FROM audit_events) e JOIN tenants t ON t.id = e.tenant_id GROUP BY t.slug"
            ).fetchall()
        )
        signed = defaultdict(list)
        for slug, signed_at in connection.execute(
            "SELECT t.slug, c.signed_at FROM audit_checkpoints c JOIN tenants t ON t.id = c.tenant_id"
            " ORDER BY c.signed_at"
        ).fetchall():
            signed[slug].append(round((signed_at - began_at).total_seconds()))
    return [
        {
            "tenant": slug,
            "events": count,
            "min_seq": low,
            "max_seq": high,
            "head_seq": head,
            "inbox": inbox,
            "checkpoints_signed_at_s": signed[slug],
            "occurred_at_steps_back": backs.get(slug, (0, 0))[0],
            "largest_step_back_ms": float(backs.get(slug, (0, 0))[1]),
            "ok": count > 0 and low == 1 and high == count and head == count and inbox == 0,
        }
        for slug, count, low, high, head, inbox in rows
    ]


def stored_counts(conninfo: str) -> dict[str, dict[str, int]]:
    with psycopg.connect(conninfo) as connection:
        rows = connection.execute(
            "SELECT t.slug,"
            " (SELECT count(*) FROM tickets k WHERE k.tenant_id = t.id),"
            " (SELECT count(*) FROM submission_uses u"
            "   WHERE u.tenant_id = t.id AND u.ticket_id IS NOT NULL),"
            " (SELECT count(*) FROM lead_submission_uses u"
            "   WHERE u.tenant_id = t.id AND u.lead_id IS NOT NULL),"
            " (SELECT count(*) FROM leads l WHERE l.tenant_id = t.id)"
            " FROM tenants t ORDER BY t.slug"
        ).fetchall()
    return {
        slug: {"tickets": tickets, "form_submissions": uses, "trial_submissions": trials, "leads": leads}
        for slug, tickets, uses, trials, leads in rows
    }


def audit_verify(app: App, slug: str) -> tuple[bool, str]:
    done = app.run("audit", "verify", "--tenant", slug)
    return done.returncode == 0, " / ".join((done.stdout + done.stderr).strip().splitlines())


def judge(deployment: Deployment, stats: Stats, desk: Desk, run: Run) -> tuple[list[Check], dict]:
    """Every check, and the details behind them (for the JSON)."""
    slugs = deployment.slugs
    errors = [error for error in stats.server_errors if error["status"] >= 500]
    unanswered = [error for error in stats.server_errors if error["status"] == 0]
    counts = stored_counts(deployment.conninfo)
    mail_checks, outbox = outbox_checks(deployment.conninfo, deployment.mailbox, run.kill)
    chains = chain_report(deployment.conninfo, run.began_at)
    verified = {slug: audit_verify(deployment.app, slug) for slug in slugs}
    rows = rss_rows(run.watch.samples, run.starts, run.end_sample["t"])
    email_cases = [case for case in desk.cases if case.email]
    emailed = sum(deployment.mailbox.link_of(case.slug, case.number) is not None for case in email_cases)
    per_tenant = ", ".join(f"{slug}: {desk.receipts[slug]} = {counts[slug]['tickets']}" for slug in slugs)
    trials = sum(count["trial_submissions"] for count in counts.values())
    checks = [
        Check("responses 5xx", str(len(errors)), not errors),
        Check("requests with no response (refused, reset, timed out)", str(len(unanswered)), not unanswered),
        Check(
            "refund receipts (302s) = tickets stored",
            f"{sum(desk.receipts.values())} = {sum(c['tickets'] for c in counts.values())} ({per_tenant})",
            all(desk.receipts[slug] == counts[slug]["tickets"] for slug in slugs),
        ),
        Check(
            "trial receipts (302s) = trial submissions stored",
            f"{sum(desk.trial_receipts.values())} = {trials}",
            all(desk.trial_receipts[slug] == counts[slug]["trial_submissions"] for slug in slugs),
        ),
        *mail_checks,
        Check(
            "tickets with an email whose receipt email (with its tracking link) arrived",
            f"{emailed} of {len(email_cases)}",
            len(email_cases) - emailed <= len(outbox["interrupted"]),
        ),
        *[
            Check(f"flask audit verify --tenant {slug}", verified[slug][1], verified[slug][0])
            for slug in slugs
        ],
        *[
            Check(
                f"chain of {chain['tenant']}: seq 1..N, head = N, inbox empty",
                f"N = {chain['events']}: seq {chain['min_seq']}..{chain['max_seq']},"
                f" head {chain['head_seq']}, inbox {chain['inbox']}",
                chain["ok"],
            )
            for chain in chains
        ],
        Check(
            "gunicorn workers at the end = at the start (none died or timed out)",
            f"{run.gunicorn_pids} → {run.gunicorn_pids_end}",
            run.gunicorn_pids == run.gunicorn_pids_end,
        ),
        *[
            Check(
                f"RSS growth of {row.process} (goal < {RSS_GOAL:.0%})",
                f"{row.growth:+.1%} ({row.start_kib / 1024:.1f} → {row.end_kib / 1024:.1f} MiB)",
                row.growth < RSS_GOAL,
            )
            for row in rows
        ],
    ]
    if run.kill and run.kill["scheduler_pid"]:
        back = run.watch.scheduler_back(run.kill)
        end = run.watch.samples[-1]["t"] - run.kill["elapsed"]
        checks.append(
            Check(
                "rq scheduler after the SIGKILL (periodic jobs and rq's retries wait for it)",
                f"{back[0]} forked one {back[1]:.0f} s later (sampled every {SAMPLE_SECONDS} s)"
                if back
                else f"none in the {end:.0f} s that followed",
                None,
            )
        )
    details = {"counts": counts, "outbox": outbox, "chains": chains, "rss": rows}
    return checks, details


# --- the report ---------------------------------------------------------------------------


def latency_table(stats: Stats, run: Run) -> dict[str, dict]:
    """Per kind of request: p50, p99 and max over the whole run, and p99 after the warm-up."""
    table = {}
    for kind, timed in sorted(stats.latencies.items()):
        values = [ms for _, ms in timed]
        settled = [ms for at, ms in timed if at - run.began >= run.warm_up]
        table[kind] = {
            "count": len(values),
            "p50_ms": quantile(values, 0.50),
            "p99_ms": quantile(values, 0.99),
            "p99_after_warm_up_ms": quantile(settled, 0.99),
            "max_ms": max(values, default=float("nan")),
            "statuses": dict(sorted(stats.statuses[kind].items())),
        }
    return table


def log_tracebacks(work: Path) -> dict[str, int]:
    return {
        path.name: path.read_text(errors="replace").count("Traceback (most recent call last)")
        for path in sorted(work.glob("*.log"))
    }


def print_report(
    stats: Stats, desk: Desk, run: Run, checks: list[Check], details: dict, latency: dict
) -> None:
    print()
    print(
        f"{stats.requests} requests in {run.seconds:.0f} s ({stats.requests / run.seconds:.1f}/s);"
        f" drained in {run.drain_seconds:.0f} s; tracking links from {dict(desk.links_by_source())}"
    )
    if run.kill:
        kill = run.kill
        print(
            f"killed {kill['victim']} (pid {kill['pid']}, scheduler pid {kill['scheduler_pid']})"
            f" at {kill['elapsed']:.0f} s; {kill['replacement']} (pid {kill['replacement_pid']})"
            " took its place"
        )
    print("\nchecks:")
    for check in checks:
        mark = {True: "ok", False: "FAIL", None: "note"}[check.ok]
        print(f"  [{mark}] {check.name}: {check.value}")
    for chain in details["chains"]:
        print(
            f"  {chain['tenant']}: checkpoints signed at {chain['checkpoints_signed_at_s']} s;"
            f" occurred_at goes back {chain['occurred_at_steps_back']} times along the chain,"
            f" by at most {chain['largest_step_back_ms']:.0f} ms"
        )
    print("\nRSS (VmRSS, MiB), from the end of each process's warm-up to the end of the traffic:")
    for row in details["rss"]:
        print(
            f"  {row.process:<34} {row.start_kib / 1024:6.1f} (t={row.start_at:3.0f} s)"
            f" → {row.end_kib / 1024:6.1f} (t={row.end_at:3.0f} s)  {row.growth:+6.1%}"
            f"  peak {row.peak_kib / 1024:.1f}"
        )
    print("\nlatency per kind of request, ms:")
    for kind, numbers in latency.items():
        print(
            f"  {kind:<28} n={numbers['count']:<6} p50 {numbers['p50_ms']:6.1f}  p99 {numbers['p99_ms']:7.1f}"
            f"  (after warm-up {numbers['p99_after_warm_up_ms']:7.1f})  max {numbers['max_ms']:7.1f}"
            f"  {numbers['statuses']}"
        )
    for entry in details["outbox"]["interrupted"] + details["outbox"]["not_sent"]:
        print(f"  outbox row not sent: {entry}")
    for error in stats.server_errors[:30]:
        print(f"  no good answer: {error}")
    if stats.odd:
        kinds = Counter((odd["kind"], odd.get("status", odd.get("error"))) for odd in stats.odd)
        print(f"  unexpected answers: {dict(kinds)}")
    print(f"tracebacks in the logs: {log_tracebacks(run.watch.server.log.parent)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_soak"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--tenants", type=int, default=2)
    parser.add_argument("--customers", type=int, default=4, help="customer threads")
    parser.add_argument("--staff", type=int, default=2, help="staff threads")
    parser.add_argument("--think", type=float, default=0.3, help="mean seconds between a person's requests")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--commit",
        help="run the app from a snapshot of this commit (git archive), not from the working tree,"
        " which others may edit while the soak runs",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ledgerdesk-soak-"))
    print(f"logs and uploads in {work}")
    started_at = datetime.now(UTC)
    app_root = snapshot(args.commit, work) if args.commit else ROOT
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.commit or "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"the app runs from {app_root}" + (f" (commit {revision})" if args.commit else " (the working tree)")
    )
    deployment = deploy(args, work, app_root)
    stats, desk = Stats(), Desk(deployment.mailbox)
    try:
        start_app(deployment, stats)
        run = drive(deployment, stats, desk, args)
        checks, details = judge(deployment, stats, desk, run)
    finally:
        deployment.stop()
    latency = latency_table(stats, run)
    print_report(stats, desk, run, checks, details, latency)
    failed = [check.name for check in checks if check.ok is False]
    print("\nALL CHECKS PASSED" if not failed else f"\n{len(failed)} CHECKS FAILED: " + "; ".join(failed))
    if args.json:
        report = {
            "started_at": started_at.isoformat(),
            "command": " ".join(sys.argv),
            "cpus": os.cpu_count(),
            "arguments": {key: str(value) for key, value in vars(args).items()},
            "app": f"commit {revision}" if args.commit else f"working tree on {revision}",
            "traffic_seconds": run.seconds,
            "drain_seconds": run.drain_seconds,
            "requests": stats.requests,
            "checks": [asdict(check) for check in checks],
            "receipts": dict(desk.receipts),
            "trial_receipts": dict(desk.trial_receipts),
            "tracking_links": dict(desk.links_by_source()),
            **details,
            "rss": [{**asdict(row), "growth": row.growth} for row in details["rss"]],
            "kill": run.kill,
            "samples": run.watch.samples,
            "latency_ms": latency,
            "server_errors": stats.server_errors,
            "unexpected": stats.odd,
            "log_tracebacks": log_tracebacks(work),
            "work": str(work),
        }
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
