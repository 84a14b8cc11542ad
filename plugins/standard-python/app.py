"""Standard Webhooks receiver, the Python one of five identical implementations;
../STANDARD-WEBHOOKS.md is the specification all five follow step by step."""

import base64
import binascii
import re
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, crypto, types

TOLERANCE_SECONDS = 300
TIMESTAMP = re.compile(r"[0-9]{1,15}")
PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,255}")


class Guest(exports.Guest):
    def describe(self) -> types.Manifest:
        return types.Manifest(
            name="Standard Webhooks (Python)",
            version="0.1.0",
            description="Standard Webhooks receiver (webhook-signature v1)",
            emits=["standard.webhook"],
            poll_interval_seconds=None,
            subscriptions=[],
        )

    def handle_webhook(self, request: types.WebhookRequest) -> types.WebhookOutcome:
        secret = config.get("secret")
        if not secret:
            raise Err(types.PluginError_Internal("config `secret` is not set"))
        if secret.startswith("whsec_"):
            secret = secret[len("whsec_"):]
        try:
            key = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise Err(types.PluginError_Internal("config `secret` is not valid base64"))

        webhook_id = required_header(request, "webhook-id")
        timestamp = required_header(request, "webhook-timestamp")
        signatures = required_header(request, "webhook-signature")

        if not TIMESTAMP.fullmatch(timestamp):
            raise Err(types.PluginError_Unauthorized("malformed webhook-timestamp header"))
        if abs(int(time.time()) - int(timestamp)) > TOLERANCE_SECONDS:
            raise Err(types.PluginError_Unauthorized(
                "webhook-timestamp is outside the 300 s tolerance"))

        signed = f"{webhook_id}.{timestamp}.".encode() + request.body
        expected = b"v1," + base64.b64encode(crypto.hmac_sha256(key, signed))
        if not any(crypto.constant_time_eq(entry.encode(), expected)
                   for entry in signatures.split(" ") if entry):
            raise Err(types.PluginError_Unauthorized("no matching signature"))

        if not PLAIN_ID.fullmatch(webhook_id):
            raise Err(types.PluginError_BadRequest(
                "webhook-id must be 1-255 characters of A-Z a-z 0-9 _ . : -"))
        body_base64 = base64.b64encode(request.body).decode()
        reply = '{"ok":true,"event":{"id":"%s","kind":"standard.webhook"}}' % webhook_id
        return types.WebhookOutcome(
            response=types.HttpResponse(
                status=200,
                headers=[("content-type", "application/json")],
                body=reply.encode(),
            ),
            events=[types.Event(
                id=webhook_id,
                kind="standard.webhook",
                subject=None,
                payload='{"body_base64":"%s"}' % body_base64,
            )],
        )

    def poll(self, cursor):
        raise Err(types.PluginError_Internal("standard-python does not poll"))

    def on_event(self, event):
        raise Err(types.PluginError_Internal("standard-python subscribes to no events"))


def required_header(request: types.WebhookRequest, name: str) -> str:
    for header_name, value in request.headers:
        if header_name.lower() == name:
            if value:
                return value
            break
    raise Err(types.PluginError_Unauthorized(f"missing {name} header"))
