"""Stripe webhooks: verifies `Stripe-Signature` (`t=<unix>,v1=<hex>[,v1=<hex>...]`,
HMAC-SHA256 of `{t}.{body}` keyed with the whole `whsec_...` endpoint secret as
UTF-8) within config `tolerance` seconds (default 300), and emits one event per
delivery: id = the body's `id` (`evt_...`), kind = `stripe.<type>`
(`stripe.invoice.paid`), subject = the customer id when the object has one,
payload = the body.

Invoice follow-up: for `invoice.*` events, when config `api_key` is set, the plugin
fetches `GET {api_base}/v1/invoices/{id}` (the id from `data.object.id`) with
`Authorization: Bearer <api_key>` and stores it in the payload as a top-level
`invoice` field beside the event's own fields, which are kept as Stripe sent them.
When the API cannot be reached, times out, or answers other than 2xx, the webhook
fails with `unavailable` (HTTP 503 to Stripe) and nothing is stored: Stripe retries
the delivery for up to three days, so the event is stored once, complete, when the
API answers again, rather than stored now without its invoice and never completed.
Without `api_key` the follow-up is skipped (logged at debug) and the payload is the
body, so the example works without a Stripe account.

Config: `secret` (the endpoint's signing secret), `tolerance` (seconds, optional),
`api_key` (a Stripe secret or restricted key, optional), `api_base` (default
`https://api.stripe.com`; its host must be in `[plugins.stripe] allowed_hosts`)."""

import json
import re

from hookhost import (Guest as Base, bad_request, config, hmac_sha256, internal,
                      json_response, log, manifest, required_config, required_header,
                      signature_matches, timestamp_age, types, unauthorized, unavailable)

import stripe_api

DEFAULT_TOLERANCE_SECONDS = 300
DEFAULT_API_BASE = "https://api.stripe.com"
DIGITS = re.compile(r"[0-9]{1,15}")


class Guest(Base, plugin_id="stripe"):
    manifest = manifest("Stripe", "0.1.0", "Stripe webhooks verified with Stripe-Signature",
                        emits=["stripe.*"])

    def handle_webhook(self, request: types.WebhookRequest) -> types.WebhookOutcome:
        secret = required_config("secret")
        verify(request, secret.encode(), tolerance_seconds())

        try:
            body = json.loads(request.body)
        except ValueError as error:
            raise bad_request(f"body is not JSON: {error}")
        event_id = body.get("id") if isinstance(body, dict) else None
        event_type = body.get("type") if isinstance(body, dict) else None
        if not isinstance(event_id, str) or not event_id:
            raise bad_request("body has no string `id`")
        if not isinstance(event_type, str) or not event_type:
            raise bad_request("body has no string `type`")

        data_object = (body.get("data") or {}).get("object") or {}
        customer = data_object.get("customer") if isinstance(data_object, dict) else None
        kind = f"stripe.{event_type}"
        payload = request.body.decode()
        if event_type.startswith("invoice."):
            payload = with_invoice(body, data_object, payload)
        return types.WebhookOutcome(
            response=json_response(
                200, json.dumps({"received": True, "event": {"id": event_id, "kind": kind}})),
            events=[types.Event(
                id=event_id,
                kind=kind,
                subject=customer if isinstance(customer, str) else None,
                payload=payload,
            )],
        )


def with_invoice(body: dict, data_object, payload: str) -> str:
    """The payload of an `invoice.*` event: the body plus the invoice as the API
    returns it now, under `invoice`."""
    api_key = config.get("api_key")
    if not api_key:
        # Every call runs in a fresh instance, so there is no "once" to keep; debug
        # keeps the log quiet for setups that never configure a key.
        log.log(log.Level.DEBUG, "config `api_key` is not set: invoice follow-up skipped")
        return payload
    invoice_id = data_object.get("id") if isinstance(data_object, dict) else None
    if not isinstance(invoice_id, str) or not invoice_id:
        raise bad_request("invoice event has no string `data.object.id`")
    api_base = config.get("api_base") or DEFAULT_API_BASE
    try:
        invoice = stripe_api.fetch_invoice(api_base, api_key, invoice_id)
    except stripe_api.ApiError as error:
        # 503 rather than storing the event without its invoice: see the module doc.
        log.log(log.Level.WARN, f"invoice follow-up failed, asking Stripe to retry: {error}")
        raise unavailable(f"fetching invoice {invoice_id}: {error}")
    body["invoice"] = invoice
    return json.dumps(body)


def tolerance_seconds() -> int:
    text = config.get("tolerance")
    if text is None or text == "":
        return DEFAULT_TOLERANCE_SECONDS
    if not DIGITS.fullmatch(text):
        raise internal("config `tolerance` must be a whole number of seconds")
    return int(text)


def verify(request: types.WebhookRequest, key: bytes, tolerance: int) -> None:
    timestamp = None
    candidates = []
    for item in required_header(request, "Stripe-Signature").split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            candidates.append(value)
    age = timestamp_age(timestamp) if timestamp is not None else None
    if age is None:
        raise unauthorized("Stripe-Signature has no valid timestamp")
    if not candidates:
        raise unauthorized("Stripe-Signature has no v1 signature")
    if age > tolerance:
        raise unauthorized("Stripe-Signature timestamp is outside the tolerance")
    expected = hmac_sha256(key, f"{timestamp}.".encode(), request.body).hex().encode()
    if not signature_matches(candidates, expected):
        raise unauthorized("no matching v1 signature")
