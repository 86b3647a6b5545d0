"""The admin's outbox page: every email the desk wrote, and whether it went out."""

from flask import Blueprint, abort, current_app, render_template, request
from flask_babel import lazy_gettext as _l

from crm.access import requires
from crm.notify import service
from crm.notify.models import OutboxStatus
from tenants.ext import URL_PREFIX

bp = Blueprint("notify", __name__, url_prefix=URL_PREFIX)

PAGE_SIZE = 25

STATUS_LABELS = {
    OutboxStatus.QUEUED: _l("Queued"),
    OutboxStatus.HELD: _l("Held"),
    OutboxStatus.SENT: _l("Sent"),
    OutboxStatus.FAILED: _l("Failed"),
}
STATUS_BADGES = {
    OutboxStatus.QUEUED: "text-bg-info",
    OutboxStatus.HELD: "text-bg-warning",
    OutboxStatus.SENT: "text-bg-success",
    OutboxStatus.FAILED: "text-bg-danger",
}


@bp.route("/admin/outbox")
@requires("outbox.view")
def outbox():
    status = request.args.get("status") or None
    before = request.args.get("before", type=int)
    if status is not None and status not in STATUS_LABELS:
        abort(400)
    entries = service.outbox_page(before=before, limit=PAGE_SIZE + 1, status=status)
    older = None
    if len(entries) > PAGE_SIZE:
        entries = entries[:PAGE_SIZE]
        older = {"before": entries[-1].message.id, **({"status": status} if status else {})}
    return render_template(
        "notify/outbox.html",
        entries=entries,
        status=status,
        older=older,
        status_labels=STATUS_LABELS,
        status_badges=STATUS_BADGES,
        smtp_configured=bool(current_app.config.get("SMTP_URL")),
        retries_run=bool(current_app.config.get("REDIS_URL")),
        max_attempts=service.MAX_ATTEMPTS,
        # The ticket page belongs to the agent workspace; until it exists, show the reference.
        ticket_pages="tickets.show" in current_app.view_functions,
    )
