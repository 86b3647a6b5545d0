"""The API against its own OpenAPI document, with schemathesis: requests generated from
the document's schemas (valid and not) must never make a server error, and every answer
must match what the document promises for its status.

Each operation gets its own hypothesis run inside one test (schemathesis's pytest plugin
does not work with this pytest); a failure names the operation and the case."""

import itertools

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.generation.modes import GenerationMode

from crm.api.models import SCOPES
from tests.test_api import TICKET, call, make_key

EXAMPLES = 15  # per operation and mode; the suite's budget (CI runs it on PostgreSQL too)


def test_the_api_keeps_its_documents_promises(app, client, make_tenant):
    tenant = make_tenant()
    key = make_key(app, tenant, ",".join(SCOPES))
    call(client, "POST", tenant, "/tickets", key, TICKET)  # RF-1001, for the reads to find
    app.config["API_RATE_LIMIT"] = "100000/minute"
    schema = schemathesis.openapi.from_wsgi(f"/t/{tenant.slug}/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    try:
        for operation, mode in itertools.product(operations, GenerationMode):

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def keeps_its_promise(case):
                case.call_and_validate(
                    headers={"Authorization": f"Bearer {key}"},
                    checks=[not_a_server_error, response_schema_conformance],
                )

            keeps_its_promise()
    finally:
        app.config.pop("API_RATE_LIMIT")
