"""The admin's outbox page."""

from flask import Blueprint

from tenants.ext import URL_PREFIX

bp = Blueprint("notify", __name__, url_prefix=URL_PREFIX)
