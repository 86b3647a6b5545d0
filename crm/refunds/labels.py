"""What people read for refund codes, and the defaults a tenant starts with."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm.provisioning.service import tenant_settings
from crm.refunds.models import EscalationOutcome, Outcome, OutsideBody

OUTCOME_LABELS = {
    Outcome.APPROVED_FULL: _l("Approved in full"),
    Outcome.APPROVED_PARTIAL: _l("Approved in part"),
    Outcome.DENIED: _l("Denied"),
}

BODY_LABELS = {
    OutsideBody.CONSUMER_ASSOCIATION: _l("Consumer association"),
    OutsideBody.PLATFORM_12315: _l("12315 platform"),
    OutsideBody.TELECOM_REGULATOR: _l("Telecom regulator"),
    OutsideBody.COURT: _l("Court"),
}

ESCALATION_OUTCOME_LABELS = {
    EscalationOutcome.FOR_CUSTOMER: _l("Upheld for the customer"),
    EscalationOutcome.FOR_PROVIDER: _l("Found for us"),
    EscalationOutcome.SETTLED: _l("Settled by agreement"),
    EscalationOutcome.WITHDRAWN: _l("Withdrawn by the customer"),
}
PENDING_LABEL = _l("Still pending")  # an escalation the body has not concluded

# Why a decision waits for a manager (crm.refunds.service.approval_needed).
WAIT_LABELS = {
    "threshold": _l("It refunds more than the amount above which a manager approves."),
    "escalated_denial": _l("It denies a request the customer took to an outside body."),
    "manager_review": _l(
        "The customer said they are not satisfied: a manager who took no part in the previous answer "
        "must decide."
    ),
}

METHOD_LABELS = {
    "original_payment": _l("Back to the original payment method"),
    "bank_transfer": _l("Bank transfer"),
    "alipay": _l("Alipay"),
    "wechat_pay": _l("WeChat Pay"),
    "cash": _l("Cash"),
    "other": _l("Other"),
}

DEFAULT_REASONS = {
    "cooling_off": _l("Within the cooling-off period"),
    "unused_service": _l("Unused balance or service time, pro rata"),
    "not_as_described": _l("Service not as described"),
    "billing_error": _l("Billing error or duplicate charge"),
    "unauthorized_charge": _l("Unauthorised charge"),
    "outside_policy": _l("Not covered by the policy"),
    "insufficient_evidence": _l("Not enough evidence"),
    "goodwill": _l("Goodwill gesture"),
}


def reason_choices() -> list[tuple[str, str]]:
    """The tenant's reason codes (settings: lines "code | label"), or the defaults."""
    custom = tenant_settings().refund_reasons
    if not custom:
        return [(code, str(label)) for code, label in DEFAULT_REASONS.items()]
    pairs = []
    for line in custom.splitlines():
        code, _sep, label = line.partition("|")
        if code.strip():
            pairs.append((code.strip(), label.strip() or code.strip()))
    return pairs


def default_outside_options() -> str:
    """Where a customer in mainland China can turn: pre-filled, each tenant can change it.
    In the caller's (forced) locale."""
    return _(
        "- your local consumer association (消费者协会);\n"
        "- the 12315 platform of the market regulator: www.12315.cn, or call 12315;\n"
        "- the telecom regulator's user complaint centre: call 12300, or yhssglxt.miit.gov.cn;\n"
        "- a court."
    )
