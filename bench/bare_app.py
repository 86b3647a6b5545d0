"""The baseline for the hosted-form load test: the same stack as Ledgerdesk (Flask,
Flask-SQLAlchemy, psycopg, gunicorn, the same PostgreSQL database) with one POST endpoint
that reads the same urlencoded form and does one INSERT of a row as wide as a ticket,
then redirects like the real form does. Nothing else: no CSRF, sessions, tenant lookup,
audit chain or templates.

    DATABASE_URL=postgresql+psycopg://… gunicorn --chdir bench -w 2 'bare_app:create_app()'

``create_schema(url)`` makes its table; ``bench/form_load.py`` calls it before starting
gunicorn, so the workers do not race to create it.
"""

import os
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from flask import Flask, redirect, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, Date, DateTime, Identity, String, Text, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class BareSubmission(db.Model):
    """As wide as a ticket plus its first message: the customer's details and the text."""

    __tablename__ = "bench_bare_submissions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    account_ref: Mapped[str | None] = mapped_column(String(100))
    purchase_date: Mapped[date | None] = mapped_column(Date)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(24))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def create_schema(url: str) -> None:
    """(Re)create the baseline's table, empty."""
    engine = create_engine(url)
    try:
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
    finally:
        engine.dispose()


def _minor_units(raw: str | None) -> int | None:
    try:
        return int(Decimal(raw) * 100) if raw else None
    except InvalidOperation:
        return None


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    db.init_app(app)

    @app.get("/")
    def ready():
        return "ok"

    @app.post("/submit")
    def submit():
        form = request.form
        purchase = form.get("purchase_date")
        row = BareSubmission(
            tenant_id=1,
            name=form.get("name", ""),
            phone=form.get("phone", ""),
            email=form.get("email") or None,
            account_ref=form.get("account_ref") or None,
            purchase_date=date.fromisoformat(purchase) if purchase else None,
            amount_minor=_minor_units(form.get("amount")),
            currency=form.get("currency") or "CNY",
            reason=form.get("reason", ""),
            status="new",
            description=form.get("description", ""),
            created_at=datetime.now(UTC),
        )
        db.session.add(row)
        db.session.commit()
        return redirect(f"/done/{row.id}")

    return app
