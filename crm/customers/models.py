"""Customers, matched by normalised phone number or email."""

from datetime import datetime

from sqlalchemy import Computed, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped

PHONE_TAIL = "substr(phone, length(phone) - 3)"


class Customer(TenantScoped, db.Model):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        Index(None, "tenant_id", "phone"),
        Index(None, "tenant_id", "email"),
        Index(None, "tenant_id", "account_ref"),
        Index(None, "tenant_id", "name"),
        Index(None, "tenant_id", "phone_tail"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # E.164, e.g. +8613800138000
    phone: Mapped[str | None] = mapped_column(String(20))
    # The phone's last four digits (尾号), kept by the database: a search by the end of
    # a number finds its few candidates by index instead of reading every customer.
    phone_tail: Mapped[str | None] = mapped_column(String(4), Computed(PHONE_TAIL, persisted=True))
    email: Mapped[str | None] = mapped_column(String(254))
    account_ref: Mapped[str | None] = mapped_column(String(100))
    # The language the customer wrote in; their emails use it.
    locale: Mapped[str] = mapped_column(String(16), default="zh_CN")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when staff merged this record into another of the same person: its requests
    # moved there, and it is kept (old links and events name it), never matched again.
    merged_into_id: Mapped[int | None] = mapped_column(BigIntId)
    # Set when the person's details were erased at their request (``crm.customers.erasure``).
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
