"""Stripe webhooks: verifies `Stripe-Signature` (`t=<unix>,v1=<hex>[,v1=<hex>...]`,
HMAC-SHA256 of `{t}.{body}` keyed with the whole `whsec_...` endpoint secret as
UTF-8) within config `tolerance` seconds (default 300), and emits one event per
delivery: id = the body's `id` (`evt_...`), kind = `stripe.<type>`
(`stripe.invoice.paid`), subject = the customer id when the object has one,
payload = the body.

Config: `secret` (the endpoint's signing secret), `tolerance` (seconds, optional)."""

import json
import re
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, crypto, types

DEFAULT_TOLERANCE_SECONDS = 300
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
                payload=request.body.decode(),
            )],
        )

    def poll(self, cursor):
        raise Err(types.PluginError_Internal("stripe does not poll"))

    def on_event(self, event):
        raise Err(types.PluginError_Internal("stripe subscribes to no events"))


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
