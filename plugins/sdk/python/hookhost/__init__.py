"""The hookhost plugin SDK for Python: what every plugin needs besides its provider
logic. `scripts/build-plugin python` puts this folder on componentize-py's path, so
`import hookhost` works in any Python plugin; only what a plugin imports is bundled
(outbound HTTP is `hookhost.http`, for worlds that import wasi:http).

    from hookhost import Guest as Base, json_response, manifest, required_header, ...

    class Guest(Base, plugin_id="acme"):  # the id names it in the default errors
        manifest = manifest("Acme", "0.1.0", "...", emits=["acme.*"])
        def handle_webhook(self, request): ...

A plugin whose manifest depends on its config defines `describe(self)` instead.

Errors: `raise unauthorized("...")` (and `bad_request`, `unavailable`, `internal`)
refuses a call with that `plugin-error` case; any other exception is a trap.
Signatures are computed and compared by the host (`crypto`), never in Python."""

import base64
import binascii
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, crypto, log  # noqa: F401 (re-exported for plugins)

try:
    # A world that also imports wasi:http has two `types`; componentize-py then
    # names the contract's after its package.
    from wit_world.imports import hookhost_plugin_types as types
except ImportError:
    from wit_world.imports import types


class Guest(exports.Guest):
    """The `guest` export with defaults for what a webhook-only plugin does not do.
    Subclass it as `Guest` in `app.py`, naming the plugin (`class Guest(Base,
    plugin_id="acme")`, or a `plugin_id` attribute), set `manifest` (or define
    `describe` to compute the manifest when loaded), and override `handle_webhook`
    and whatever else the manifest says the plugin uses."""

    plugin_id = "this plugin"
    manifest = None

    def __init_subclass__(cls, plugin_id=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if plugin_id is not None:
            cls.plugin_id = plugin_id

    def describe(self) -> types.Manifest:
        if self.manifest is None:
            raise TypeError(f"{self.plugin_id}: set `manifest = manifest(...)` in Guest, "
                            "or define describe")
        return self.manifest

    def poll(self, cursor):
        raise internal(f"{self.plugin_id} does not poll")

    def on_event(self, event):
        raise internal(f"{self.plugin_id} subscribes to no events")


def manifest(name: str, version: str, description: str, emits,
             poll_interval_seconds=None, subscriptions=()) -> types.Manifest:
    """The manifest (`Guest.manifest`, or what `describe` returns); by default the
    plugin neither polls nor subscribes to events."""
    return types.Manifest(
        name=name,
        version=version,
        description=description,
        emits=list(emits),
        poll_interval_seconds=poll_interval_seconds,
        subscriptions=list(subscriptions),
    )


def unauthorized(message: str) -> Err:
    """Not authentic (HTTP 401): `raise unauthorized("no matching signature")`."""
    return Err(types.PluginError_Unauthorized(message))


def bad_request(message: str) -> Err:
    """Malformed (HTTP 400)."""
    return Err(types.PluginError_BadRequest(message))


def unavailable(message: str) -> Err:
    """Something the plugin depends on is down; the caller should retry (HTTP 503)."""
    return Err(types.PluginError_Unavailable(message))


def internal(message: str) -> Err:
    """A bug or a setup mistake in the plugin (HTTP 500)."""
    return Err(types.PluginError_Internal(message))


def header(request: types.WebhookRequest, name: str):
    """The first value of header `name`, compared without case; None when absent."""
    name = name.lower()
    for header_name, value in request.headers:
        if header_name.lower() == name:
            return value
    return None


def required_header(request: types.WebhookRequest, name: str) -> str:
    """The first value of header `name`; a missing or empty one refuses the call
    with `unauthorized("missing <name> header")`, `name` as given."""
    value = header(request, name)
    if not value:
        raise unauthorized(f"missing {name} header")
    return value


def required_config(key: str) -> str:
    """Config `key`; unset or empty fails the call with
    `internal("config `<key>` is not set")`, since only the operator can fix it."""
    value = config.get(key)
    if not value:
        raise internal(f"config `{key}` is not set")
    return value


def hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 under `key` of the parts joined, computed by the host."""
    return crypto.hmac_sha256(key, parts[0] if len(parts) == 1 else b"".join(parts))


def hmac_sha1(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA1 under `key` of the parts joined, computed by the host (contract
    0.2.0). For providers that still sign with it (Twilio)."""
    return crypto.hmac_sha1(key, parts[0] if len(parts) == 1 else b"".join(parts))


def hmac_sha512(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA512 under `key` of the parts joined, computed by the host (contract
    0.2.0)."""
    return crypto.hmac_sha512(key, parts[0] if len(parts) == 1 else b"".join(parts))


def signature_matches(candidates, expected: bytes) -> bool:
    """Whether any candidate (str or bytes) equals `expected`, each compared by the
    host in constant time; empty candidates never match."""
    return any(crypto.constant_time_eq(
        candidate.encode() if isinstance(candidate, str) else candidate, expected)
        for candidate in candidates if candidate)


def signatures_of_version(signatures: str, version: str) -> list:
    """The values of the entries of `signatures` (space-separated
    `<version>,<value>`, as Standard Webhooks' `webhook-signature` sends them,
    several during a key rotation) whose version is `version`, in order. Empty
    entries, entries without a comma and other versions are skipped: a receiver
    checks each value it can and accepts the delivery when any one matches."""
    prefix = version + ","
    return [entry[len(prefix):] for entry in signatures.split(" ") if entry.startswith(prefix)]


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is a valid Ed25519 signature (RFC 8032) of `message`
    under `public_key` (32 bytes), verified strictly by the host: a non-canonical
    signature, a small-order key, or a key or signature of the wrong length is
    False, never an error. Needs hookhost:plugin@0.2.0."""
    return crypto.ed25519_verify(public_key, message, signature)


def ed25519_base64_matches(public_key: bytes, message: bytes, signature_base64: str) -> bool:
    """Whether `signature_base64`, an Ed25519 signature as Standard Webhooks and
    others send it (standard padded base64), is a valid signature of `message`
    under `public_key`. Only the canonical encoding of the bytes is accepted, so
    that two texts never stand for one signature (and every SDK accepts the same
    strings)."""
    try:
        signature = base64.b64decode(signature_base64, validate=True)
    except (binascii.Error, ValueError):
        return False
    return (base64.b64encode(signature).decode() == signature_base64
            and ed25519_verify(public_key, message, signature))


def timestamp_age(text: str):
    """How many seconds Unix time `text` is from now, past or future; None unless
    it is 1-15 ASCII digits."""
    if not (1 <= len(text) <= 15 and text.isascii() and text.isdigit()):
        return None
    return abs(int(time.time()) - int(text))


def check_timestamp(text: str, name: str, tolerance_seconds: int) -> None:
    """Refuses a replay: `text`, from header `name`, must be Unix seconds within
    `tolerance_seconds` of now, else `unauthorized("malformed <name> header")` or
    `unauthorized("<name> is outside the <tolerance> s tolerance")`."""
    age = timestamp_age(text)
    if age is None:
        raise unauthorized(f"malformed {name} header")
    if age > tolerance_seconds:
        raise unauthorized(f"{name} is outside the {tolerance_seconds} s tolerance")


def json_response(status: int, text: str) -> types.HttpResponse:
    """An HTTP response of `text`, JSON the plugin wrote (`json.dumps`, or a format
    string when that is all it needs), with `content-type: application/json`. The
    SDK does not serialise for the plugin: importing `json` would bundle it into
    every plugin, used or not."""
    return types.HttpResponse(
        status=status,
        headers=[("content-type", "application/json")],
        body=text.encode(),
    )


def text_response(status: int, text: str, content_type: str) -> types.HttpResponse:
    """An HTTP response of `text` (UTF-8) with exactly `content_type`, for the
    answers a provider expects as something other than JSON: Twilio's TwiML
    (`text/xml`), Microsoft Graph's validation token (`text/plain`). Sent with
    `x-content-type-options: nosniff`, since such a body may echo request input."""
    return types.HttpResponse(
        status=status,
        headers=[("content-type", content_type), ("x-content-type-options", "nosniff")],
        body=text.encode(),
    )
