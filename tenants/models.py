"""The Tenant table, the declarative base every model shares, and the mixin that makes
a table tenant-owned."""

import enum

from sqlalchemy import BigInteger, ForeignKey, ForeignKeyConstraint, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by ``tenants`` and the application's models."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Tenant(Base):
    """A provider using Ledgerdesk. Its slug is the URL prefix ``/t/<slug>/``."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    # None means "follow the visitor's browser".
    locale: Mapped[str | None] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=TenantStatus.ACTIVE)

    @property
    def is_active(self) -> bool:
        return self.status == TenantStatus.ACTIVE


class TenantScoped:
    """Mixin for tenant-owned tables: a non-null ``tenant_id`` that the isolation guard
    fills on insert and adds to the ORM's reads, updates and deletes through the session
    (``tenants.guard`` says what it does not cover)."""

    @declared_attr
    def tenant_id(cls) -> Mapped[int]:
        return mapped_column(BigIntId, ForeignKey("tenants.id"), nullable=False)


def tenant_fk(columns: list[str], table: str, ondelete: str | None = None) -> ForeignKeyConstraint:
    """A composite foreign key ``(tenant_id, *columns) -> table(tenant_id, id)``, so the
    database itself refuses a reference to another tenant's row.

    The referenced table needs ``UniqueConstraint("tenant_id", "id")``.
    """
    return ForeignKeyConstraint(
        ["tenant_id", *columns],
        [f"{table}.tenant_id", f"{table}.id"],
        ondelete=ondelete,
    )
