"""The agent workspace: the ticket queue, a ticket's page and its actions."""

from flask import Blueprint

from tenants.ext import URL_PREFIX

bp = Blueprint("tickets", __name__, url_prefix=URL_PREFIX)
