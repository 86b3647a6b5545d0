"""The admin's page for the IMAP mailbox inbound mail is fetched from: set it (checked by
signing in before it is kept), fetch now, or stop."""

import imaplib
from urllib.parse import quote

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm.access import current_actor, requires
from crm.errors import DomainError
from crm.inbound import imap
from crm.inbound.forms import MailboxForm
from crm.webforms import in_one_transaction, show_error
from tenants.ext import URL_PREFIX

bp = Blueprint("inbound", __name__, url_prefix=URL_PREFIX)


def _url_of(form: MailboxForm, saved: imap.Mailbox | None) -> str:
    """The mailbox's URL from the form; an empty password keeps the saved one, for the
    same server and user."""
    password = form.password.data or ""
    if (
        not password
        and saved
        and (saved.host, saved.user) == (form.host.data.strip(), form.user.data.strip())
    ):
        password = saved.password
    if not password:
        raise DomainError(_l("Enter the mailbox's password."), "password")
    port = f":{form.port.data}" if form.port.data else ""
    return (
        f"{form.security.data}://{quote(form.user.data.strip(), safe='')}:{quote(password, safe='')}"
        f"@{form.host.data.strip()}{port}/{quote(form.folder.data.strip(), safe='')}"
    )


@bp.route("/admin/mailbox", methods=["GET", "POST"])
@requires("settings.manage")
def mailbox():
    saved = imap.mailbox()
    form = MailboxForm()
    if not form.is_submitted() and saved:
        form.security.data = "imaps" if saved.secure else "imap"
        form.host.data, form.port.data, form.user.data, form.folder.data = (
            saved.host, saved.port, saved.user, saved.folder,
        )  # fmt: skip
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                url = _url_of(form, saved)
                box = imap.Mailbox.of(url)
                imap.check_reachable(box)
                imap.check(box)
                in_one_transaction(
                    lambda: imap.set_mailbox(url, actor=current_actor()),
                    done=_(
                        "Mailbox saved: the desk signed in to it and fetches its unread mail every minute."
                    ),
                )
            except DomainError as error:
                show_error(form, error)
                status = 422
            else:
                return redirect(url_for(".mailbox"))
    return render_template("inbound/mailbox.html", form=form, saved=saved), status


@bp.route("/admin/mailbox/fetch", methods=["POST"])
@requires("settings.manage")
def fetch_now():
    """Fetch the unread mail now rather than within the minute."""
    try:
        result = imap.poll()
    except DomainError as error:
        flash(error.message, "danger")
    except (OSError, imaplib.IMAP4.error) as error:
        flash(_("The desk could not open this mailbox: %(reason)s", reason=str(error)[:300]), "danger")
    else:
        counts = result.outcomes
        flash(
            _(
                "Fetched %(total)d: %(filed)d filed on their tickets, %(new)d new tickets, "
                "%(ignored)d ignored, %(failed)d failed (left unread for the next round).",
                total=sum(counts.values()),
                **counts,
            ),
            "danger" if counts["failed"] else "success",
        )
    return redirect(url_for(".mailbox"))


@bp.route("/admin/mailbox/stop", methods=["POST"])
@requires("settings.manage")
def stop():
    in_one_transaction(
        lambda: imap.set_mailbox(None, actor=current_actor()),
        done=_("The desk no longer fetches mail from a mailbox."),
    )
    return redirect(url_for(".mailbox"))
