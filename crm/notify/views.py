"""The admin's outbox page: every email the desk wrote, and whether it went out."""

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.access import can, current_actor, requires
from crm.columns import utcnow
from crm.errors import DomainError, NotFound
from crm.notify import service
from crm.notify.models import OutboxStatus
from crm.portal.forms import ConfirmForm
from crm.webforms import in_one_transaction
from tenants.ext import URL_PREFIX

bp = Blueprint("notify", __name__, url_prefix=URL_PREFIX)

PAGE_SIZE = 25

STATUS_LABELS = {
    OutboxStatus.QUEUED: _l("Queued"),
    OutboxStatus.HELD: _l("Held"),
    OutboxStatus.SENDING: _l("Sending"),
    OutboxStatus.SENT: _l("Sent"),
    OutboxStatus.FAILED: _l("Failed"),
}
STATUS_BADGES = {
    OutboxStatus.QUEUED: "text-bg-info",
    OutboxStatus.HELD: "text-bg-warning",
    OutboxStatus.SENDING: "text-bg-info",
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
        now=utcnow(),
        may_send_again=can(current_user, "outbox.send"),
        confirm_form=ConfirmForm(formdata=None),
        # The ticket page belongs to the agent workspace; until it exists, show the reference.
        ticket_pages="tickets.show" in current_app.view_functions,
    )


@bp.route("/admin/outbox/<int:message_id>/send-again", methods=["POST"])
@requires("outbox.send")
def send_again(message_id: int):
    """Put a failed or interrupted message back in the queue."""
    try:
        in_one_transaction(
            lambda: service.send_again(message_id, actor=current_actor()),
            done=_("The message is queued to be sent again."),
        )
    except NotFound:
        abort(404)
    except DomainError as error:
        flash(error.message, "danger")
    return redirect(url_for(".outbox", _anchor=f"message-{message_id}"))
