"""schemathesis against the service's own OpenAPI schema, over a real server on 127.0.0.1:
generated requests for every operation, bounded in examples and time; no answer may be a 5xx.

(schemathesis' pytest plugin does not run under pytest 9 here, so each operation's
hypothesis strategy is driven directly.)"""

import time

import pytest
import schemathesis
from helpers import start_server
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from test_service import make_app

EXAMPLES = 100  # per operation and generation mode


@pytest.fixture(scope="module")
def service_url():
    server, thread, url = start_server(make_app(explain_concurrency=2, max_upload_mb=1))
    yield url
    server.should_exit = True
    thread.join(10)


def test_no_generated_request_gets_a_server_error(service_url):
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/explain", "/health", "/model"}
    calls: dict[str, list[int]] = {}
    started = time.perf_counter()
    for op in operations:
        # valid requests; for uploads also schema-breaking ones (a GET without parameters
        # has nothing to break)
        modes = list(GenerationMode) if op.method.upper() == "POST" else [GenerationMode.POSITIVE]
        for mode in modes:
            @given(case=op.as_strategy(mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def no_server_error(case):
                response = case.call_and_validate(checks=[not_a_server_error], timeout=60)
                calls.setdefault(case.operation.label, []).append(response.status_code)

            no_server_error()
    print({label: sorted(set(codes)) for label, codes in calls.items()},
          f"{sum(map(len, calls.values()))} requests in {time.perf_counter() - started:.1f} s")
    assert len(calls) == len(operations)  # a GET without parameters has one example
    assert all(len(codes) >= 10 for label, codes in calls.items() if label.startswith("POST"))
    assert all(code < 500 for codes in calls.values() for code in codes)
