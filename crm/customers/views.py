"""Customers: the list, and each customer's profile with every ticket and lead, the
contact details as given on each request, and the do-not-contact state."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import or_, select

from crm.access import current_actor, requires
from crm.customers import erasure, service
from crm.customers.models import Customer
from crm.dnc import service as dnc
from crm.errors import DomainError
from crm.extensions import db
from crm.input_guard import number_or_none
from crm.leads.forms import STAGE_LABELS
from crm.provisioning.service import tenant_settings
from crm.tickets import service as tickets
from crm.tickets.labels import STATUS_LABELS
from crm.tickets.queue import matching_customer_ids
from crm.webforms import in_one_transaction
from tenants.ext import URL_PREFIX

bp = Blueprint("customers", __name__, url_prefix=URL_PREFIX)

REQUEST_CHANNEL_LABELS = {
    "email": _l("By email"),
    "phone": _l("By phone"),
    "letter": _l("By letter"),
    "in_person": _l("In person"),
    "web_form": _l("Through the request form"),
}

PAGE_SIZE = 50


def customer_page(q: str, *, before: int | None) -> list[Customer]:
    """The tenant's customers newest first, ``PAGE_SIZE + 1`` of them older than the id
    ``before``; with ``q``, those the queue's search finds by phone, account, name or
    email."""
    query = select(Customer).where(Customer.merged_into_id.is_(None)).order_by(Customer.id.desc())
    query = query.limit(PAGE_SIZE + 1)
    if q:
        ids = matching_customer_ids(q, tenant_settings().country)
        matches = [Customer.id.in_(ids)] if ids else []
        if "@" in q:
            matches.append(Customer.email == q.lower())
        if not matches:
            return []
        query = query.where(or_(*matches))
    if before is not None:
        query = query.where(Customer.id < before)
    return list(db.session.scalars(query))


@bp.route("/customers")
@requires("customers.view")
def index():
    q = (request.args.get("q") or "").strip()[:200]
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before < 2**63:
        abort(400)
    customers = customer_page(q, before=before)
    older = None
    if len(customers) > PAGE_SIZE:
        customers = customers[:PAGE_SIZE]
        older = url_for(".index", q=q or None, before=customers[-1].id)
    counts = service.ticket_counts([customer.id for customer in customers])
    listed = dnc.listed_values([c.phone for c in customers], [c.email for c in customers])
    return render_template(
        "customers/index.html", customers=customers, q=q, older=older, counts=counts, listed=listed
    )


@bp.route("/customers/<int:customer_id>")
@requires("customers.view")
def show(customer_id: int):
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        abort(404)
    if customer.merged_into_id is not None:
        flash(_("That record was merged into this one."), "info")
        return redirect(url_for(".show", customer_id=customer.merged_into_id))
    return _profile(customer)


def _profile(customer: Customer, status: int = 200):
    tickets, leads = service.requests_of(customer)
    page = render_template(
        "customers/show.html",
        customer=customer,
        tickets=tickets,
        leads=leads,
        standing=dnc.standing(customer.phone, customer.email),
        request_channels=REQUEST_CHANNEL_LABELS,
        status_labels=STATUS_LABELS,
        stage_labels=STAGE_LABELS,
        erase_refused=status == 422,
    )
    return page, status


@bp.route("/customers/<int:customer_id>/merge", methods=["POST"])
@requires("customers.edit")
def merge(customer_id: int):
    """Merge this record into another of the same person (by the other's number)."""
    source = service.live_customer(customer_id)
    if source is None:
        abort(404)
    target = service.live_customer(number_or_none(request.form.get("into")))
    if target is None:
        flash(_("There is no customer with that number."), "danger")
        return redirect(url_for(".show", customer_id=customer_id))
    try:
        moved = in_one_transaction(lambda: service.merge_customers(source, target, actor=current_actor()))
    except DomainError as error:
        flash(error.message, "danger")
        return redirect(url_for(".show", customer_id=customer_id))
    flash(
        _(
            "Merged: %(tickets)d tickets and %(leads)d leads moved here. Splitting undoes it.",
            tickets=len(moved["ticket_ids"]),
            leads=len(moved["lead_ids"]),
        ),
        "success",
    )
    return redirect(url_for(".show", customer_id=target.id))


@bp.route("/customers/<int:customer_id>/erase", methods=["POST"])
@requires("customers.edit")
def erase(customer_id: int):
    """Erase the person's personal data at their request (managers and admins)."""
    customer = service.live_customer(customer_id)
    if customer is None:
        abort(404)
    channel = request.form.get("channel", "")
    try:
        if request.form.get("confirm") != "yes":
            raise DomainError(_("Tick the box to confirm: an erasure cannot be undone."), "confirm")
        user, actor = current_user._get_current_object(), current_actor()
        done = in_one_transaction(
            lambda: erasure.erase_customer(customer, channel=channel, user=user, actor=actor)
        )
    except DomainError as error:
        flash(error.message, "danger")
        return _profile(customer, 422)
    flash(
        _(
            "Erased: the details on %(tickets)d tickets and %(leads)d leads, %(files)d files and %(emails)d "
            "emails. The audit trail still verifies.",
            tickets=done.tickets,
            leads=done.leads,
            files=done.files,
            emails=done.emails,
        ),
        "success",
    )
    return redirect(url_for(".show", customer_id=customer_id))


@bp.route("/customers/<int:customer_id>/split", methods=["POST"])
@requires("customers.edit")
def split(customer_id: int):
    """Give one of this customer's tickets a record of its own."""
    number = number_or_none(request.form.get("ticket"), 15)
    ticket = tickets.ticket_by_number(number) if number is not None else None
    if ticket is None or ticket.customer_id != customer_id:
        abort(404)
    new_id = in_one_transaction(lambda: service.split_off(ticket, actor=current_actor()))
    flash(_("%(reference)s now has a customer record of its own.", reference=ticket.reference), "success")
    return redirect(url_for(".show", customer_id=new_id))
