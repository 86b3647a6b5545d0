"""Tenant exports an admin started from the app, with their progress."""

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm.columns import UTCDateTime, utcnow
from crm.extensions import db
from tenants import BigIntId, TenantScoped


class ExportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class TenantExportRun(TenantScoped, db.Model):
    __tablename__ = "tenant_exports"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    requested_by_id: Mapped[int] = mapped_column(BigIntId)
    status: Mapped[str] = mapped_column(String(16), default=ExportStatus.QUEUED)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    # A random name under instance/exports: the file is reached only through the app.
    file_name: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def percent(self) -> int:
        return (
            100
            if self.status == ExportStatus.DONE
            else int(100 * self.done / self.total)
            if self.total
            else 0
        )
