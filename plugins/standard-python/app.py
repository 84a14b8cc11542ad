"""Standard Webhooks receiver, the Python one of five identical implementations;
../STANDARD-WEBHOOKS.md is the specification all five follow step by step."""

import base64
import binascii
import re

from hookhost import (Guest as Base, bad_request, check_timestamp, config,
                      ed25519_base64_matches, hmac_sha256, internal, json_response, manifest,
                      required_header, signature_matches, signatures_of_version, types,
                      unauthorized)

TOLERANCE_SECONDS = 300
PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,255}")


class Guest(Base, plugin_id="standard-python"):
    manifest = manifest("Standard Webhooks (Python)", "0.1.0",
                        "Standard Webhooks receiver (webhook-signature v1 and v1a)",
                        emits=["standard.webhook"])

    def handle_webhook(self, request: types.WebhookRequest) -> types.WebhookOutcome:
        secret = config.get("secret")
        public_key = config.get("public_key")
        if not secret and not public_key:
            raise internal("config `secret` or `public_key` must be set")
        key = verify_key = None
        if secret:
            try:
                key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
            except (binascii.Error, ValueError):
                raise internal("config `secret` is not valid base64")
        if public_key:
            try:
                verify_key = base64.b64decode(public_key.removeprefix("whpk_"), validate=True)
            except (binascii.Error, ValueError):
                pass
            if verify_key is None or len(verify_key) != 32:
                raise internal("config `public_key` is not the base64 of a 32-byte Ed25519 key")

        webhook_id = required_header(request, "webhook-id")
        timestamp = required_header(request, "webhook-timestamp")
        signatures = required_header(request, "webhook-signature")
        check_timestamp(timestamp, "webhook-timestamp", TOLERANCE_SECONDS)

        signed = f"{webhook_id}.{timestamp}.".encode() + request.body
        authentic = key is not None and signature_matches(
            signatures_of_version(signatures, "v1"), base64.b64encode(hmac_sha256(key, signed)))
        if not authentic and verify_key is not None:
            authentic = any(ed25519_base64_matches(verify_key, signed, value)
                            for value in signatures_of_version(signatures, "v1a"))
        if not authentic:
            raise unauthorized("no matching signature")

        if not PLAIN_ID.fullmatch(webhook_id):
            raise bad_request("webhook-id must be 1-255 characters of A-Z a-z 0-9 _ . : -")
        return types.WebhookOutcome(
            response=json_response(
                200, '{"ok":true,"event":{"id":"%s","kind":"standard.webhook"}}' % webhook_id),
            events=[types.Event(
                id=webhook_id,
                kind="standard.webhook",
                subject=None,
                payload='{"body_base64":"%s"}' % base64.b64encode(request.body).decode(),
            )],
        )
