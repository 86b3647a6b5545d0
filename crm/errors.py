"""Domain errors raised by services, and the HTTP error pages."""

import json
import re

from flask import Flask, Response, make_response, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from crm.extensions import db

PROBLEM = "application/problem+json"


class DomainError(Exception):
    """A request the domain refuses, with a message fit to show the person who made it.

    ``field`` names the form field at fault, if one is."""

    status = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        # Rendered now, as plain text: Jinja takes a lazy translation for safe markup,
        # and some messages carry what people typed (a file's name).
        message = str(message)
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """Input no form could hold: a control character, a number past the database's range."""

    status = 400


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


ERROR_MESSAGES = {
    400: _l("The request could not be understood."),
    403: _l("You do not have access to this page."),
    404: _l("This page does not exist."),
    405: _l("This address does not accept that kind of request."),
    413: _l("What you sent is too large."),
    429: _l("Too many requests. Please wait a moment and try again."),
    503: _l("The service was interrupted for a moment and nothing was saved. Please send it again."),
    500: _l("Something went wrong on our side. Nothing you submitted was lost; please try again."),
}


# The JSON API's addresses: their errors are RFC 9457 problem details, not pages.
API_PATH = re.compile(r"^/t/[^/]+/api/v1/")


def problem(status: int, title: str, detail: str | None = None, *, errors=None, headers=None) -> Response:
    """An RFC 9457 problem response; ``errors`` lists each field's error."""
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    return Response(json.dumps(body, ensure_ascii=False), status, mimetype=PROBLEM, headers=headers or {})


def _render(status: int, message: str | None = None):
    body = message or ERROR_MESSAGES.get(status, ERROR_MESSAGES[500])
    if API_PATH.match(request.path):
        return problem(status, str(body))
    return render_template("errors/error.html", status=status, message=body), status


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError):
        return _render(400, _l("The form expired or was sent from elsewhere. Reload the page and try again."))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge):
        # The page's forms (the language switch) would read the body again and raise again:
        # they get an empty one, as werkzeug caches a parsed body.
        request.__dict__.update(form=ImmutableMultiDict(), files=ImmutableMultiDict())
        return _render(413)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.response is not None:  # the page was made where the error arose (a form's 429)
            return error.response
        return _render(error.code or 500)

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        return _render(error.status, error.message)

    @app.errorhandler(DBAPIError)
    def database_lost(error: DBAPIError):
        """The database connection broke mid-request (a restart, a killed backend): the
        transaction is gone whole, so say to send it again (a form's token is unused)."""
        if not (error.connection_invalidated or isinstance(error, OperationalError)):
            raise error
        db.session.rollback()
        response = make_response(_render(503))
        response.headers["Retry-After"] = "5"
        return response
