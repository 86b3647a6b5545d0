"""Case files (auditors, managers and admins: ``audit.view``) and whole-tenant exports
started from the app (admins)."""

import tempfile
from pathlib import Path

from flask import Blueprint, Response, abort, flash, redirect, render_template, send_file, url_for
from flask_login import current_user

from crm.access import current_actor, requires
from crm.audit.service import record
from crm.errors import DomainError
from crm.exports import runs
from crm.exports.case_file import write_case_file
from crm.exports.models import ExportStatus
from crm.extensions import db
from crm.forms import Form
from crm.tickets import service as tickets
from tenants import current_tenant
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


@bp.route("/admin/exports")
@requires("settings.manage")
def export_runs():
    listed = runs.runs()
    running = any(run.status in (ExportStatus.QUEUED, ExportStatus.RUNNING) for run in listed)
    return render_template(
        "exports/runs.html",
        runs=listed,
        running=running,
        downloadable={run.id for run in listed if runs.downloadable(run)},
        hours=runs.DOWNLOAD_HOURS,
    )


@bp.route("/admin/exports", methods=["POST"])
@requires("settings.manage")
def start_export():
    form = Form()
    if not form.validate_on_submit():
        abort(400)
    try:
        runs.start(user_id=current_user.id, actor=current_actor())
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        flash(str(error.message), "warning")
    return redirect(url_for("exports.export_runs"))


@bp.route("/admin/exports/<int:run_id>/download")
@requires("settings.manage")
def download_export(run_id: int):
    run = runs.run_by_id(run_id)
    if run is None:
        abort(404)
    path = runs.downloadable(run)
    if path is None:
        return render_template("exports/gone.html"), 410
    record("export.downloaded", "tenant_export", run.id, actor=current_actor(), data={"size": run.size})
    db.session.commit()
    name = f"{current_tenant().slug}-export-{run.id}.zip"
    return send_file(path, mimetype="application/zip", as_attachment=True, download_name=name)
