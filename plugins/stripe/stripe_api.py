"""Stripe's REST API, called through wasi:http (the host's outbound HTTP, which only
reaches the hosts in `[plugins.stripe] allowed_hosts`).

A plugin call handles one webhook, so one blocking GET at a time is all it needs:
the request is sent, then the plugin blocks on the response's pollable and reads
the body stream to its end. Resources are closed child-first (stream before body,
pollable before future), as the WASI resource rules require."""

import json
from urllib.parse import quote, urlsplit

from componentize_py_types import Err
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as http

# Well below the host's default 10 s call timeout, so that a stalled API ends as the
# plugin's own `unavailable` answer rather than the host interrupting the call.
TIMEOUT_NS = 5_000_000_000
READ_CHUNK = 64 * 1024


class ApiError(Exception):
    """The API could not be reached, or answered something other than a 2xx JSON
    object. The message says which, and never contains the API key."""


def fetch_invoice(api_base: str, api_key: str, invoice_id: str) -> dict:
    """`GET {api_base}/v1/invoices/{invoice_id}` with Stripe's bearer auth."""
    url = f"{api_base.rstrip('/')}/v1/invoices/{quote(invoice_id, safe='')}"
    status, body = get(url, [
        ("authorization", f"Bearer {api_key}".encode()),
        ("accept", b"application/json"),
    ])
    if not 200 <= status < 300:
        excerpt = body[:200].decode(errors="replace")
        raise ApiError(f"GET {url} answered HTTP {status}: {excerpt}")
    try:
        invoice = json.loads(body)
    except ValueError as error:
        raise ApiError(f"GET {url} answered with a body that is not JSON: {error}")
    if not isinstance(invoice, dict):
        raise ApiError(f"GET {url} answered with JSON that is not an object")
    return invoice


def get(url: str, headers: list) -> tuple:
    """Sends a GET and returns (status, body bytes)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(f"{url!r} is not an http(s) URL")
    request = http.OutgoingRequest(http.Fields.from_list(headers))
    request.set_method(http.Method_Get())
    request.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else ""))
    options = http.RequestOptions()
    options.set_connect_timeout(TIMEOUT_NS)
    options.set_first_byte_timeout(TIMEOUT_NS)
    options.set_between_bytes_timeout(TIMEOUT_NS)

    try:
        future = outgoing_handler.handle(request, options)
    except Err as error:
        raise ApiError(f"GET {url} failed: {describe(error.value, parts.netloc)}")
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    if outcome is None or isinstance(outcome, Err):
        raise ApiError(f"GET {url} failed: the response was already taken")
    inner = outcome.value
    if isinstance(inner, Err):
        raise ApiError(f"GET {url} failed: {describe(inner.value, parts.netloc)}")
    with inner.value as response:
        status = response.status()
        with response.consume() as body:
            with body.stream() as stream:
                data = read_all(stream, url, parts.netloc)
    return status, data


def read_all(stream, url: str, authority: str) -> bytes:
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(READ_CHUNK))
        except Err as error:
            if isinstance(error.value, streams.StreamError_Closed):
                return b"".join(chunks)
            code = http.http_error_code(error.value.value)
            reason = describe(code, authority) if code is not None else "the body stream failed"
            raise ApiError(f"reading the response of GET {url} failed: {reason}")


def describe(code, authority: str) -> str:
    """A wasi:http error code in words (`HttpRequestDenied` -> `http-request-denied`)."""
    if isinstance(code, http.ErrorCode_HttpRequestDenied):
        return (f"http-request-denied: the host refused the request; "
                f"{authority} must be in [plugins.stripe] allowed_hosts")
    name = type(code).__name__.removeprefix("ErrorCode_")
    words = "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")
    detail = getattr(code, "value", None)
    return f"{words} ({detail})" if detail is not None else words
