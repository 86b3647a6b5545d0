"""The reports pages: SLA attainment and the complaints return, each with a chart, the
same numbers as a table, and a CSV download (``?format=csv``) in the page's language."""

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from crm.access import record_auditor_reading, requires
from crm.columns import utcnow
from crm.reports import periods, service
from crm.reports.forms import read_period
from crm.reports.tables import Table, as_csv
from tenants import current_tenant
from tenants.ext import URL_PREFIX

bp = Blueprint("reports", __name__, url_prefix=URL_PREFIX)


def _csv(tables: list[Table], name: str, period: periods.Period) -> Response:
    filename = f"{current_tenant().slug}-{name}-{period.first_day}-{period.last_day}.csv"
    return Response(
        as_csv(tables),
        mimetype="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _query_without(*names: str) -> dict:
    return {key: value for key, value in request.args.items() if key not in names}


@bp.route("/reports")
@requires("reports.view")
def index():
    """SLA attainment, by the chosen grouping, with the weekly trend."""
    form, period = read_period(request.args)
    if period is None:
        return render_template("reports/sla.html", form=form, period=None, table=None), 400
    group_by = form.by.data
    rows = service.sla_rows(period, group_by=group_by, filters=form.filters())
    table = service.sla_table(rows, group_by, period)
    record_auditor_reading("audit.viewed", "report", None, {"report": "sla", **_query_without()})
    if request.args.get("format") == "csv":
        return _csv([table], "sla", period)
    trend = service.weekly_trend(period, form.filters()) if group_by != "week" else None
    return render_template(
        "reports/sla.html",
        form=form,
        period=period,
        table=table,
        attainment_items=[(row["metric"], row["attainment"]) for row in table.rows],
        trend=[(week, percent) for week, percent, _decided in trend or []],
        query=_query_without("format"),
    )


@bp.route("/reports/complaints")
@requires("reports.view")
def complaints():
    """The complaints return; ``?print=1`` is the printable page."""
    form, period = read_period(request.args)
    if period is None:
        return render_template("reports/complaints.html", form=form, period=None, tables=[]), 400
    result = service.complaints_return(period, form.filters())
    tables = service.complaints_tables(result)
    record_auditor_reading("audit.viewed", "report", None, {"report": "complaints", **_query_without()})
    if request.args.get("format") == "csv":
        return _csv(tables, "complaints", period)
    return render_template(
        "reports/complaints.html",
        form=form,
        period=period,
        tables=tables,
        result=result,
        printable=request.args.get("print") == "1",
        query=_query_without("format", "print"),
        me=current_user,
        printed_at=utcnow(),
    )


def _chart(chart_id: str, title: str, items: list[tuple[str, float | None]], *, percent: bool) -> dict:
    scale = 100 if percent else max([value or 0 for _label, value in items] + [1])
    return {"id": chart_id, "title": title, "items": items, "unit": "%" if percent else "", "scale": scale}


def _tables_page(name: str, title: str, charts):
    """A report that is tables and a chart: the page, or its CSV."""
    form, period = read_period(request.args)
    if period is None:
        return render_template("reports/tables.html", form=form, period=None, title=title), 400
    tables = service.report_tables(name, period, filters=form.filters())
    record_auditor_reading("audit.viewed", "report", None, {"report": name, **_query_without()})
    if request.args.get("format") == "csv":
        return _csv(tables, name, period)
    return render_template(
        "reports/tables.html",
        form=form,
        period=period,
        title=title,
        tables=tables,
        charts=charts(tables),
        query=_query_without("format"),
    )


def _rows(tables: list[Table], key: str) -> list[dict]:
    return next(table.rows for table in tables if table.key == key)


@bp.route("/reports/refunds")
@requires("reports.view")
def refunds():
    def charts(tables):
        rows = _rows(tables, "refunds_by_outcome")
        return [
            _chart(
                "chart-outcomes",
                _("Decisions by outcome"),
                [(f"{r['key']} ({r['currency']})", r["decisions"]) for r in rows],
                percent=False,
            )
        ]

    return _tables_page("refunds", _("Refunds"), charts)


@bp.route("/reports/leads")
@requires("reports.view")
def leads():
    def charts(tables):
        rows = _rows(tables, "funnel")
        return [
            _chart(
                "chart-funnel",
                _("Funnel: share of the leads received that reached each stage"),
                [(r["stage"], r["percent"]) for r in rows],
                percent=True,
            )
        ]

    return _tables_page("leads", _("Leads"), charts)


@bp.route("/reports/agents")
@requires("reports.view")
def agents():
    def charts(tables):
        rows = tables[0].rows
        return [
            _chart(
                "chart-handled",
                _("Resolved in the period, by agent"),
                [(r["name"], r["handled"]) for r in rows],
                percent=False,
            )
        ]

    return _tables_page("agents", _("Agents"), charts)
