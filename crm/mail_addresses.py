"""What the desk takes as an email address, wherever one is given: a staff account, a
customer's form or email, a lead, a do-not-contact entry, the tenant's support address."""

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l

from crm.errors import DomainError


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def check_email(email: str) -> str:
    """The normalised address, or a DomainError saying what is wrong with it."""
    email = normalise_email(email)
    if not email:
        raise DomainError(_l("Enter an email address."), "email")
    try:
        # test_environment admits *.test addresses, which the demo tenant uses.
        checked = validate_email(email, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        raise DomainError(_l("Enter a valid email address."), "email") from None
    return checked.normalized.lower()
