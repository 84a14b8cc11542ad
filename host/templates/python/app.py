"""hookhost plugin `{{id}}`: accepts every delivery and emits one `{{id}}.received`
event keyed by the SHA-256 of the body. Replace handle_webhook with your provider's
logic: read secrets with required_config, headers with required_header, verify the
signature with hmac_sha256 and signature_matches (the host computes and compares),
refuse with `raise unauthorized("...")`. The SDK is the package `hookhost`
({{repo}}/plugins/sdk/python), which build.sh bundles; only modules imported here
at build time are bundled into the component."""

import json

from hookhost import Guest as Base, crypto, json_response, manifest, types


class Guest(Base, plugin_id="{{id}}"):
    manifest = manifest("{{id}}", "0.1.0", "TODO: what this plugin does", emits=["{{id}}.*"])

    def handle_webhook(self, request: types.WebhookRequest) -> types.WebhookOutcome:
        return types.WebhookOutcome(
            response=json_response(200, '{"ok":true}'),
            events=[types.Event(
                id=crypto.sha256(request.body).hex(),
                kind="{{id}}.received",
                subject=None,
                payload=json.dumps({"size": len(request.body)}),
            )],
        )
