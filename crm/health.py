"""Liveness and readiness probes for load balancers and orchestrators."""

from flask import Blueprint, current_app, jsonify
from redis import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from crm.extensions import db

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():
    """The process is up."""
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    """The database, and Redis when configured, answer; 503 names what is down."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))  # raw SQL: touches no tenant table
        checks["database"] = "ok"
    except SQLAlchemyError as error:
        db.session.rollback()
        checks["database"] = f"down: {type(getattr(error, 'orig', None) or error).__name__}"
    if current_app.config.get("REDIS_URL"):
        try:
            current_app.extensions["redis"].ping()
            checks["redis"] = "ok"
        except RedisError as error:
            checks["redis"] = f"down: {type(error).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503
