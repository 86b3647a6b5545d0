"""Downloading a case file: auditors, managers and admins (``audit.view``)."""

import tempfile
from pathlib import Path

from flask import Blueprint, Response, abort

from crm.access import current_actor, requires
from crm.exports.case_file import write_case_file
from crm.extensions import db
from crm.tickets import service as tickets
from tenants.ext import URL_PREFIX

bp = Blueprint("exports", __name__, url_prefix=URL_PREFIX)


@bp.route("/tickets/<int:number>/case-file")
@requires("audit.view")
def case_file(number: int):
    ticket = tickets.ticket_by_number(number)
    if ticket is None:
        abort(404)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{ticket.reference}-case-file.zip"
        write_case_file(ticket, path, actor=current_actor())
        db.session.commit()
        content = path.read_bytes()
    return Response(
        content,
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{ticket.reference}-case-file.zip"'},
    )
