"""Stripe's REST API, called through hookhost.http (wasi:http, which only reaches
the hosts in `[plugins.stripe] allowed_hosts`)."""

import json
from urllib.parse import quote

from hookhost import http

# Well below the host's default 10 s call timeout, so that a stalled API ends as the
# plugin's own `unavailable` answer rather than the host interrupting the call.
TIMEOUT_SECONDS = 5


class ApiError(Exception):
    """The API could not be reached, or answered something other than a 2xx JSON
    object. The message says which, and never contains the API key."""


def fetch_invoice(api_base: str, api_key: str, invoice_id: str) -> dict:
    """`GET {api_base}/v1/invoices/{invoice_id}` with Stripe's bearer auth."""
    url = f"{api_base.rstrip('/')}/v1/invoices/{quote(invoice_id, safe='')}"
    try:
        response = http.get(url, [
            ("authorization", f"Bearer {api_key}".encode()),
            ("accept", b"application/json"),
        ], timeout_seconds=TIMEOUT_SECONDS)
    except http.HttpError as error:
        hint = (f"; {error.authority} must be in [plugins.stripe] allowed_hosts"
                if error.denied else "")
        raise ApiError(f"{error}{hint}")
    if not 200 <= response.status < 300:
        excerpt = response.body[:200].decode(errors="replace")
        raise ApiError(f"GET {url} answered HTTP {response.status}: {excerpt}")
    try:
        invoice = json.loads(response.body)
    except ValueError as error:
        raise ApiError(f"GET {url} answered with a body that is not JSON: {error}")
    if not isinstance(invoice, dict):
        raise ApiError(f"GET {url} answered with JSON that is not an object")
    return invoice
