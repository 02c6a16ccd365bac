"""Schemathesis over /openapi.json with a valid key: no 5xx, no response that breaks the schema."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# What the service promises: no 5xx, only documented status codes and content types, bodies that
# match the documented schemas. (Not "every schema-valid request succeeds": an upload's content
# is checked by the data pipeline, which a schema cannot express.)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.mark.slow
def test_every_operation_conforms_to_the_schema(server, keys):
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    headers = {"Authorization": f"Bearer {keys['alice']}"}
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case):
            # generation on 2 busy CPU cores can take longer than Schemathesis' 10 s default
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=60)

        conforms()
        checked.append(operation.label)
    assert len(checked) >= 6, checked
