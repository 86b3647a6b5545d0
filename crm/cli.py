"""Registers every command group on the app's ``flask`` CLI."""

from flask import Flask

from crm.api.cli import api_keys_cli
from crm.audit.cli import audit_cli
from crm.auth.cli import users_cli
from crm.demo.cli import demo_cli
from crm.dnc.cli import dnc_cli
from crm.exports.cli import export_cli
from crm.jobs import jobs_cli
from crm.leads.cli import leads_cli
from crm.notify.cli import outbox_cli
from crm.policies.cli import policies_cli
from crm.provisioning.cli import tenants_cli
from crm.reports.cli import reports_cli
from crm.sla.cli import calendar_cli, sla_cli
from crm.webhooks.cli import webhooks_cli


def init_app(app: Flask) -> None:
    groups = (
        tenants_cli,
        users_cli,
        audit_cli,
        jobs_cli,
        outbox_cli,
        demo_cli,
        calendar_cli,
        sla_cli,
        policies_cli,
        export_cli,
        reports_cli,
        api_keys_cli,
        webhooks_cli,
        leads_cli,
        dnc_cli,
    )
    for group in groups:
        app.cli.add_command(group)
