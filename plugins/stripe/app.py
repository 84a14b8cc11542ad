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
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, crypto, log
# Named apart from wasi:http's `types`, which this plugin's world also imports.
from wit_world.imports import hookhost_plugin_types as types

import stripe_api

DEFAULT_TOLERANCE_SECONDS = 300
DEFAULT_API_BASE = "https://api.stripe.com"
DIGITS = re.compile(r"[0-9]{1,15}")


class Guest(exports.Guest):
    def describe(self) -> types.Manifest:
        return types.Manifest(
            name="Stripe",
            version="0.1.0",
            description="Stripe webhooks verified with Stripe-Signature",
            emits=["stripe.*"],
            poll_interval_seconds=None,
            subscriptions=[],
        )

    def handle_webhook(self, request: types.WebhookRequest) -> types.WebhookOutcome:
        secret = config.get("secret")
        if not secret:
            raise Err(types.PluginError_Internal("config `secret` is not set"))
        tolerance = tolerance_seconds()
        verify(request, secret.encode(), tolerance)

        try:
            body = json.loads(request.body)
        except ValueError as error:
            raise Err(types.PluginError_BadRequest(f"body is not JSON: {error}"))
        event_id = body.get("id") if isinstance(body, dict) else None
        event_type = body.get("type") if isinstance(body, dict) else None
        if not isinstance(event_id, str) or not event_id:
            raise Err(types.PluginError_BadRequest("body has no string `id`"))
        if not isinstance(event_type, str) or not event_type:
            raise Err(types.PluginError_BadRequest("body has no string `type`"))

        data_object = (body.get("data") or {}).get("object") or {}
        customer = data_object.get("customer") if isinstance(data_object, dict) else None
        kind = f"stripe.{event_type}"
        payload = request.body.decode()
        if event_type.startswith("invoice."):
            payload = with_invoice(body, data_object, payload)
        reply = json.dumps({"received": True, "event": {"id": event_id, "kind": kind}})
        return types.WebhookOutcome(
            response=types.HttpResponse(
                status=200,
                headers=[("content-type", "application/json")],
                body=reply.encode(),
            ),
            events=[types.Event(
                id=event_id,
                kind=kind,
                subject=customer if isinstance(customer, str) else None,
                payload=payload,
            )],
        )

    def poll(self, cursor):
        raise Err(types.PluginError_Internal("stripe does not poll"))

    def on_event(self, event):
        raise Err(types.PluginError_Internal("stripe subscribes to no events"))


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
        raise Err(types.PluginError_BadRequest("invoice event has no string `data.object.id`"))
    api_base = config.get("api_base") or DEFAULT_API_BASE
    try:
        invoice = stripe_api.fetch_invoice(api_base, api_key, invoice_id)
    except stripe_api.ApiError as error:
        # 503 rather than storing the event without its invoice: see the module doc.
        log.log(log.Level.WARN, f"invoice follow-up failed, asking Stripe to retry: {error}")
        raise Err(types.PluginError_Unavailable(f"fetching invoice {invoice_id}: {error}"))
    body["invoice"] = invoice
    return json.dumps(body)


def tolerance_seconds() -> int:
    text = config.get("tolerance")
    if text is None or text == "":
        return DEFAULT_TOLERANCE_SECONDS
    if not DIGITS.fullmatch(text):
        raise Err(types.PluginError_Internal(
            "config `tolerance` must be a whole number of seconds"))
    return int(text)


def verify(request: types.WebhookRequest, key: bytes, tolerance: int) -> None:
    header = next((value for name, value in request.headers
                   if name.lower() == "stripe-signature"), None)
    if not header:
        raise Err(types.PluginError_Unauthorized("missing Stripe-Signature header"))
    timestamp = None
    candidates = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not DIGITS.fullmatch(timestamp):
        raise Err(types.PluginError_Unauthorized(
            "Stripe-Signature has no valid timestamp"))
    if not candidates:
        raise Err(types.PluginError_Unauthorized("Stripe-Signature has no v1 signature"))
    if abs(int(time.time()) - int(timestamp)) > tolerance:
        raise Err(types.PluginError_Unauthorized(
            "Stripe-Signature timestamp is outside the tolerance"))
    expected = crypto.hmac_sha256(key, f"{timestamp}.".encode() + request.body).hex().encode()
    if not any(crypto.constant_time_eq(candidate.encode(), expected)
               for candidate in candidates):
        raise Err(types.PluginError_Unauthorized("no matching v1 signature"))
