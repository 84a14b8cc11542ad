"""Twilio webhooks (Messaging, Voice, status callbacks), verified as Twilio's own
`RequestValidator` verifies them, and answered with an empty TwiML `<Response/>`.

`X-Twilio-Signature` is the base64 HMAC-SHA1, keyed with config `auth_token`, of
the URL Twilio requested (the 0.2.0 `request.url`: config `public_url` + path +
query) followed by the form parameters of the body sorted by name, each name then
its value (a name sent several times: its distinct values sorted). As in
Twilio's libraries, the URL is tried without its port and with the scheme's
default port added, since Twilio signs either. A JSON body is signed through
its SHA-256, hex, in the URL's `bodySHA256` query parameter, and the signature
covers the URL alone. With a Webhook Setting's SharedKey Twilio adds
`X-Twilio-Webhooks-Signature-Settings: key=...,algorithm=HMAC_SHA1|HMAC_SHA256`
and signs with that key (config `shared_key_secret`) and algorithm.

Twilio signs no timestamp, so the event id is derived from what it signs: the
hex SHA-256 of the signed string. A retry of one delivery, or a replay of a
captured one, is then stored once; `I-Twilio-Idempotency-Token` names the same
retries but is not signed, so an id from it could be varied by a replayer.
Kind: `twilio.message` (a `MessageSid`/`SmsSid`), `twilio.call` (a `CallSid`),
else `twilio.webhook`; subject: that sid; payload: the parameters (of the query
for a GET) as a JSON object, a name sent several times mapping to the list of its
values, or the JSON body as sent. A request that fails verification is refused
with 401 (Twilio's own helpers answer 403; Twilio acts on neither)."""

import base64
import json
from urllib.parse import parse_qsl, urlsplit

from hookhost import (Guest as Base, bad_request, crypto, header, hmac_sha1, hmac_sha256,
                      manifest, required_config, required_header, signature_matches,
                      text_response, types, unauthorized)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
SIGNERS = {"HMAC_SHA1": hmac_sha1, "HMAC_SHA256": hmac_sha256}


class Guest(Base, plugin_id="twilio"):
    manifest = manifest("Twilio", "0.1.0", "Twilio webhooks verified with X-Twilio-Signature",
                        emits=["twilio.*"])

    def handle_webhook(self, request: types.WebhookRequest) -> types.WebhookOutcome:
        signature = required_header(request, "X-Twilio-Signature")
        key, sign = signing_key(request)

        body_hash = first_value(parse_qsl(urlsplit(request.url).query), "bodySHA256")
        if body_hash is not None:
            if crypto.sha256(request.body).hex() != body_hash:
                raise unauthorized("bodySHA256 does not match the body")
            params = []
        else:
            params = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)

        appended = sorted_params(params)
        expected = (base64.b64encode(sign(key, (url + appended).encode()))
                    for url in url_variants(request.url))
        if not any(signature_matches([signature], candidate) for candidate in expected):
            raise unauthorized("no matching signature")

        event_id = crypto.sha256((request.url + appended).encode()).hex()
        if body_hash is not None:
            try:
                payload = request.body.decode()
                json.loads(payload)
            except ValueError as error:
                raise bad_request(f"body is not UTF-8 JSON: {error}")
            kind, sid = "twilio.webhook", None
        else:
            # A webhook configured for GET carries its parameters in the signed URL.
            if request.method == "GET" and not params:
                params = parse_qsl(request.query, keep_blank_values=True)
            kind, sid = kind_of(params)
            payload = json.dumps(as_object(params))
        return types.WebhookOutcome(
            response=text_response(200, EMPTY_TWIML, "text/xml"),
            events=[types.Event(id=event_id, kind=kind, subject=sid, payload=payload)],
        )


def signing_key(request: types.WebhookRequest):
    """The key and HMAC the request says it was signed with: the Auth Token and
    HMAC-SHA1, or with `X-Twilio-Webhooks-Signature-Settings` the SharedKey secret
    and the header's algorithm (HMAC-SHA1 when it names none)."""
    settings = header(request, "X-Twilio-Webhooks-Signature-Settings")
    if not settings:
        return required_config("auth_token").encode(), hmac_sha1
    algorithm = "HMAC_SHA1"
    for part in settings.split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            algorithm = value.strip()
            break
    sign = SIGNERS.get(algorithm.upper())
    if sign is None:
        raise unauthorized(f"unsupported signature algorithm {algorithm[:40]!r}")
    return required_config("shared_key_secret").encode(), sign


def sorted_params(params) -> str:
    """The parameters as Twilio appends them to the URL: by name, each name then
    its value; a name sent several times once per distinct value, values sorted."""
    values = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(values) for value in sorted(values[name]))


def url_variants(url: str):
    """`url` without its port and with the scheme's default port added (when it
    names none), the two forms Twilio's validators accept."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        return [parts._replace(netloc=parts.netloc.split(":")[0]).geturl(), parts.geturl()]
    default = 443 if parts.scheme == "https" else 80
    return [parts.geturl(), parts._replace(netloc=f"{parts.netloc}:{default}").geturl()]


def first_value(pairs, name: str):
    """The first non-empty value of `name` among query `pairs`, as `parse_qs` finds it."""
    return next((value for key, value in pairs if key == name and value), None)


def kind_of(params):
    names = dict(params)
    for field, kind in (("MessageSid", "twilio.message"), ("SmsSid", "twilio.message"),
                        ("CallSid", "twilio.call")):
        if names.get(field):
            return kind, names[field]
    return "twilio.webhook", None


def as_object(params) -> dict:
    """Parameters as a JSON object; a name sent several times maps to its values."""
    result = {}
    for name, value in params:
        if name not in result:
            result[name] = value
        elif isinstance(result[name], list):
            result[name].append(value)
        else:
            result[name] = [result[name], value]
    return result
