"""Pages outside any tenant."""

from flask import Blueprint, jsonify, render_template

from crm.audit.signing import current_key

bp = Blueprint("site", __name__)


@bp.route("/")
def index():
    return render_template("site/index.html")


@bp.route("/.well-known/ledgerdesk-keys.json")
def signing_keys():
    """The public keys checkpoints and bundles are signed with: the current one and
    every older one still published (docs/audit-format.md)."""
    return jsonify(current_key().published())
