"""Outbound HTTP for Python plugins, over wasi:http (the host's outbound HTTP, which
reaches only the hosts in the plugin's `allowed_hosts`). Needs a world that imports
`wasi:http/outgoing-handler` (see plugins/stripe/world.wit); urllib does not work.

A plugin call makes one request at a time, so blocking is all it needs: the body is
written, then the plugin blocks on the response's pollable and reads the body stream
to its end. Resources are closed child-first (stream before body, pollable before
future), as the WASI resource rules require."""

from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as http

READ_CHUNK = 64 * 1024
# wasi's limit for one `blocking-write-and-flush`.
WRITE_CHUNK = 4096

METHODS = {
    "GET": http.Method_Get, "HEAD": http.Method_Head, "POST": http.Method_Post,
    "PUT": http.Method_Put, "DELETE": http.Method_Delete, "PATCH": http.Method_Patch,
    "OPTIONS": http.Method_Options,
}


class Response:
    """A response read to its end. (Not a dataclass: `dataclasses` would bundle
    `inspect` and more into the plugin.)"""

    def __init__(self, status: int, body: bytes):
        self.status = status
        self.body = body


class HttpError(Exception):
    """The request could not be made or its response not read. The message says
    which (`GET <url> failed: connection-refused`) and holds no header values.
    `denied` is true when the host refused it: `authority` is not in the plugin's
    `allowed_hosts`."""

    def __init__(self, message: str, authority: str, denied: bool = False):
        super().__init__(message)
        self.authority = authority
        self.denied = denied


def get(url: str, headers=(), timeout_seconds=None) -> Response:
    """`request("GET", ...)`."""
    return request("GET", url, headers, None, timeout_seconds)


def request(method: str, url: str, headers=(), body=None, timeout_seconds=None) -> Response:
    """Sends one request and reads the whole response. `headers` are (name, bytes)
    pairs; `timeout_seconds` bounds connecting, the first response byte and each gap
    between bytes (the host caps each too). Any status is a Response; only failing
    to get one raises HttpError."""
    parts = urlsplit(url)
    what = f"{method} {url}"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError(f"{url!r} is not an http(s) URL", parts.netloc)
    try:
        outgoing = http.OutgoingRequest(http.Fields.from_list(list(headers)))
    except Err as error:
        raise HttpError(f"{what}: bad request header: {error.value}", parts.netloc)
    outgoing.set_method(METHODS[method]() if method in METHODS else http.Method_Other(method))
    outgoing.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    outgoing.set_authority(parts.netloc)
    outgoing.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else ""))
    outgoing_body = outgoing.body() if body is not None else None
    options = http.RequestOptions()
    if timeout_seconds is not None:
        nanos = int(timeout_seconds * 1_000_000_000)
        options.set_connect_timeout(nanos)
        options.set_first_byte_timeout(nanos)
        options.set_between_bytes_timeout(nanos)

    try:
        future = outgoing_handler.handle(outgoing, options)
    except Err as error:
        raise failure(f"{what} failed", error.value, parts.netloc)
    # When the host refused the request this write fails too; the response below
    # says why, so its error is reported first.
    written = write_body(outgoing_body, body) if outgoing_body is not None else None
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    if outcome is None or isinstance(outcome, Err):
        raise HttpError(f"{what} failed: the response was already taken", parts.netloc)
    inner = outcome.value
    if isinstance(inner, Err):
        raise failure(f"{what} failed", inner.value, parts.netloc)
    if written is not None:
        raise HttpError(f"{what} failed: writing the body: {written}", parts.netloc)
    with inner.value as response:
        status = response.status()
        with response.consume() as incoming:
            with incoming.stream() as stream:
                data = read_all(stream, what, parts.netloc)
    return Response(status, data)


def write_body(outgoing_body, body: bytes):
    """Writes and finishes the request body; the reason when that failed, else None."""
    try:
        with outgoing_body.write() as stream:
            for start in range(0, len(body), WRITE_CHUNK):
                stream.blocking_write_and_flush(body[start:start + WRITE_CHUNK])
    except Err as error:
        # Dropped unfinished: the host treats the body as incomplete.
        outgoing_body.__exit__(None, None, None)
        if isinstance(error.value, streams.StreamError_Closed):
            return "the body stream was closed"
        code = http.http_error_code(error.value.value)
        return describe(code) if code is not None else "the body stream failed"
    try:
        http.OutgoingBody.finish(outgoing_body, None)
    except Err as error:
        return describe(error.value)
    return None


def read_all(stream, what: str, authority: str) -> bytes:
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(READ_CHUNK))
        except Err as error:
            if isinstance(error.value, streams.StreamError_Closed):
                return b"".join(chunks)
            code = http.http_error_code(error.value.value)
            if code is not None:
                raise failure(f"reading the response of {what} failed", code, authority)
            raise HttpError(f"reading the response of {what} failed: the body stream failed",
                            authority)


def failure(context: str, code, authority: str) -> HttpError:
    return HttpError(f"{context}: {describe(code)}", authority,
                     denied=isinstance(code, http.ErrorCode_HttpRequestDenied))


def describe(code) -> str:
    """A wasi:http error code in words (`HttpRequestDenied` -> `http-request-denied`)."""
    if isinstance(code, http.ErrorCode_HttpRequestDenied):
        return "http-request-denied: the host refused the request"
    name = type(code).__name__.removeprefix("ErrorCode_")
    words = "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")
    detail = getattr(code, "value", None)
    return f"{words} ({detail})" if detail is not None else words
