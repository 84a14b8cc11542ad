"""hookhost plugin `{{id}}`: accepts every delivery and emits one `{{id}}.received`
event keyed by the SHA-256 of the body. Replace handle_webhook with your provider's
logic: verify its signature with crypto.hmac_sha256 and crypto.constant_time_eq,
read secrets with config.get, refuse with `raise Err(types.PluginError_Unauthorized(...))`.
Only modules imported here at build time are bundled into the component."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, crypto, types  # noqa: F401 (config: for your secrets)


class Guest(exports.Guest):
    def describe(self) -> types.Manifest:
        return types.Manifest(
            name="{{id}}",
            version="0.1.0",
            description="TODO: what this plugin does",
            emits=["{{id}}.*"],
            poll_interval_seconds=None,
            subscriptions=[],
        )

    def handle_webhook(self, request: types.WebhookRequest) -> types.WebhookOutcome:
        return types.WebhookOutcome(
            response=types.HttpResponse(
                status=200,
                headers=[("content-type", "application/json")],
                body=b'{"ok":true}',
            ),
            events=[types.Event(
                id=crypto.sha256(request.body).hex(),
                kind="{{id}}.received",
                subject=None,
                payload=json.dumps({"size": len(request.body)}),
            )],
        )

    def poll(self, cursor):
        raise Err(types.PluginError_Internal("{{id}} does not poll"))

    def on_event(self, event):
        raise Err(types.PluginError_Internal("{{id}} subscribes to no events"))
