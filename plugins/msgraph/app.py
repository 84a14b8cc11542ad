"""Microsoft Graph change notifications and lifecycle notifications.

Validation: a request with a `validationToken` query parameter (Graph POSTs it
when a subscription is created or renewed; any method is answered) gets 200,
`content-type: text/plain` and the token URL-decoded as its body, and stores
nothing.

Notifications (`{"value": [...]}`) carry no signature: each one's `clientState`
must equal config `client_state`, the secret given when the subscription was
made (compared in constant time by the host). A delivery in which none matches
is refused with 401 and nothing is stored; in a delivery that mixes, the
matching ones are stored and the others dropped (logged), since one
notification URL may serve subscriptions of other apps. Stored ones are
answered 202 Accepted, as Graph expects. The JWTs of rich notifications
(`validationTokens`) are not checked.

One event per stored notification: id = the notification's `id` when it has
one, else the hex SHA-256 of the notification (its JSON with sorted keys), so
Graph's retries of it are stored once while two changes of one resource, which
share subscription, resource and change type, are not merged. Kind:
`msgraph.<changeType>` (`msgraph.created`), for a lifecycle notification
`msgraph.lifecycle.<lifecycleEvent>` (`msgraph.lifecycle.reauthorizationRequired`),
else `msgraph.notification`; subject: `resource`, else `subscriptionId`; payload:
the notification without its `clientState`."""

import json
from urllib.parse import parse_qsl

from hookhost import (Guest as Base, bad_request, crypto, log, manifest, required_config,
                      signature_matches, text_response, types, unauthorized)


class Guest(Base, plugin_id="msgraph"):
    manifest = manifest("Microsoft Graph", "0.1.0",
                        "Microsoft Graph change notifications checked by clientState",
                        emits=["msgraph.*"])

    def handle_webhook(self, request: types.WebhookRequest) -> types.WebhookOutcome:
        pairs = parse_qsl(request.query, keep_blank_values=True)
        # Graph spells it `validationToken`; ASP.NET, which its samples use, reads
        # query names without case.
        token = next((value for name, value in pairs if name.lower() == "validationtoken"),
                     None)
        if token is not None:
            return types.WebhookOutcome(response=text_response(200, token, "text/plain"),
                                        events=[])

        client_state = required_config("client_state").encode()
        try:
            body = json.loads(request.body)
        except ValueError as error:
            raise bad_request(f"body is not JSON: {error}")
        notifications = body.get("value") if isinstance(body, dict) else None
        if not isinstance(notifications, list) or not notifications:
            raise bad_request("body has no `value` list of notifications")

        events = [event_of(notification) for notification in notifications
                  if isinstance(notification, dict)
                  and isinstance(notification.get("clientState"), str)
                  and signature_matches([notification["clientState"]], client_state)]
        if not events:
            raise unauthorized("no notification carries the configured clientState")
        if len(events) < len(notifications):
            log.log(log.Level.WARN, f"dropped {len(notifications) - len(events)} of "
                    f"{len(notifications)} notifications whose clientState did not match")
        return types.WebhookOutcome(
            response=types.HttpResponse(status=202, headers=[], body=b""), events=events)


def event_of(notification: dict) -> types.Event:
    fields = {name: value for name, value in notification.items() if name != "clientState"}
    given_id = fields.get("id")
    if isinstance(given_id, str) and given_id:
        event_id = given_id
    else:
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        event_id = crypto.sha256(canonical.encode()).hex()
    lifecycle, change = fields.get("lifecycleEvent"), fields.get("changeType")
    if isinstance(lifecycle, str) and lifecycle:
        kind = f"msgraph.lifecycle.{lifecycle}"
    elif isinstance(change, str) and change:
        kind = f"msgraph.{change}"
    else:
        kind = "msgraph.notification"
    subject = next((fields[name] for name in ("resource", "subscriptionId")
                    if isinstance(fields.get(name), str) and fields[name]), None)
    return types.Event(id=event_id, kind=kind, subject=subject, payload=json.dumps(fields))
