"""Ledgerdesk: a compliance-grade complaint and refund desk for service providers."""

from pathlib import Path
from typing import Any

from flask import Flask

from crm import access, cli, errors, http_edge, input_guard, jobs, ratelimit, site
from crm.api import admin as api_admin
from crm.api import keys as api_keys
from crm.api import views as api_views
from crm.audit import checkpoints as audit_checkpoints
from crm.audit import service as audit_service
from crm.audit import views as audit_views
from crm.auth import scope as auth_scope
from crm.auth import views as auth_views
from crm.calls import views as call_views
from crm.config import DEFAULTS, from_environment
from crm.customers import views as customer_views
from crm.dnc import views as dnc_views
from crm.exports import views as export_views
from crm.extensions import (
    babel,
    bootstrap,
    csrf,
    db,
    install_savepoint_rewind,
    login_manager,
    migrate,
    tenants,
)
from crm.files import storage as file_storage
from crm.health import bp as health_bp
from crm.i18n import select_locale, select_timezone
from crm.inbound import imap as inbound_imap
from crm.inbound import views as inbound_views
from crm.leads import public as lead_public_views
from crm.leads import views as lead_views
from crm.notify import service as notify_service
from crm.notify import views as notify_views
from crm.policies import service as policies_service
from crm.policies import views as policy_views
from crm.portal import views as portal_views
from crm.provisioning import service as provisioning_service
from crm.provisioning import views as settings_views
from crm.refunds import views as refund_views
from crm.reports import digest as report_digest
from crm.reports import views as report_views
from crm.sla import sweep as sla_sweep
from crm.sla import versions as sla_versions
from crm.sla import views as sla_views
from crm.templating import init_templating
from crm.tickets import bulk_views
from crm.tickets import views as ticket_views
from crm.webhooks import service as webhook_service
from crm.webhooks import views as webhook_views

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, then ``config`` on top (tests use it)."""
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
    )
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(from_environment(Path(app.instance_path)))
    app.config.from_mapping(config or {})
    # First: the trusted hosts and proxies, and the response headers.
    http_edge.init_app(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    tenants.init_app(app, db)
    install_savepoint_rewind(db.session.session_factory.class_)
    audit_service.install(db.session.session_factory.class_)
    provisioning_service.install(db.session.session_factory.class_)
    api_keys.install(db.session.session_factory.class_)
    file_storage.install(db.session.session_factory.class_)
    auth_scope.install(db.session.session_factory.class_)
    webhook_service.install(db.session.session_factory.class_)
    policies_service.install(db.session.session_factory.class_)
    sla_versions.install(db.session.session_factory.class_)
    jobs.init_app(app)
    jobs.on_worker_start(app, sla_sweep.schedule_next)
    jobs.on_worker_start(app, audit_service.schedule_chain_stragglers)
    jobs.on_worker_start(app, audit_checkpoints.schedule_checkpoints)
    jobs.on_worker_start(app, report_digest.schedule_digests)
    jobs.on_worker_start(app, webhook_service.schedule_sweep)
    jobs.on_worker_start(app, notify_service.schedule_stranded)
    jobs.on_worker_start(app, inbound_imap.schedule_poll)
    if webhook_service.on_audit_event not in audit_service.RECORD_OBSERVERS:
        audit_service.RECORD_OBSERVERS.append(webhook_service.on_audit_event)
    csrf.init_app(app)
    ratelimit.init_app(app)
    bootstrap.init_app(app)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    login_manager.init_app(app)
    login_manager.user_loader(auth_views.load_signed_in_user)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = "basic"

    errors.init_app(app)
    access.init_app(app)
    input_guard.init_app(app)
    init_templating(app)
    cli.init_app(app)
    blueprints = (
        health_bp,
        site.bp,
        auth_views.bp,
        audit_views.bp,
        portal_views.bp,
        ticket_views.bp,
        bulk_views.bp,
        customer_views.bp,
        notify_views.bp,
        settings_views.bp,
        sla_views.bp,
        policy_views.bp,
        refund_views.bp,
        export_views.bp,
        lead_public_views.bp,
        lead_views.bp,
        call_views.bp,
        dnc_views.bp,
        report_views.bp,
        api_views.bp,
        api_admin.bp,
        webhook_views.bp,
        inbound_views.bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    return app
