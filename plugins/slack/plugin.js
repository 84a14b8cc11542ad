// Slack Events API: verifies `X-Slack-Signature` (`v0=` + hex HMAC-SHA256 of
// `v0:{timestamp}:{body}` under config `signing_secret`) with
// `X-Slack-Request-Timestamp` within 300 s, answers the `url_verification`
// challenge, and emits one event per `event_callback`: id = the body's `event_id`,
// kind = `slack.<event.type>` (`slack.message`), subject = the team id,
// payload = the body. Other callback types are acknowledged without an event.

import {
  badRequest, checkTimestamp, hex, hmacSha256, jsonResponse, manifest, plugin,
  requiredConfig, requiredHeader, signatureMatches, unauthorized,
} from "./hookhost.js";

// Slack's own guard against replays: a signature is only good for five minutes.
const TOLERANCE_SECONDS = 300;
const decoder = new TextDecoder();

export const guest = plugin("slack", {
  manifest: manifest("Slack", "0.1.0", "Slack Events API, verified with X-Slack-Signature", ["slack.*"]),

  handleWebhook(request) {
    verify(request, requiredConfig("signing_secret"));

    let body;
    try {
      body = JSON.parse(decoder.decode(request.body));
    } catch (error) {
      throw badRequest(`body is not JSON: ${error}`);
    }
    if (body === null || typeof body !== "object") throw badRequest("body is not a JSON object");

    if (body.type === "url_verification") {
      if (typeof body.challenge !== "string") throw badRequest("url_verification without a challenge");
      return { response: jsonResponse(200, JSON.stringify({ challenge: body.challenge })), events: [] };
    }
    if (body.type !== "event_callback") {
      return { response: jsonResponse(200, JSON.stringify({ ok: true })), events: [] };
    }
    const eventId = body.event_id;
    const eventType = body.event && body.event.type;
    if (typeof eventId !== "string" || eventId === "") throw badRequest("body has no string `event_id`");
    if (typeof eventType !== "string" || eventType === "") throw badRequest("body has no string `event.type`");
    const kind = `slack.${eventType}`;
    return {
      response: jsonResponse(200, JSON.stringify({ ok: true, event: { id: eventId, kind } })),
      events: [
        {
          id: eventId,
          kind,
          subject: typeof body.team_id === "string" ? body.team_id : undefined,
          payload: JSON.stringify(body),
        },
      ],
    };
  },
});

function verify(request, secret) {
  const timestamp = requiredHeader(request, "X-Slack-Request-Timestamp");
  const signature = requiredHeader(request, "X-Slack-Signature");
  checkTimestamp(timestamp, "X-Slack-Request-Timestamp", TOLERANCE_SECONDS);
  const expected = "v0=" + hex(hmacSha256(secret, `v0:${timestamp}:`, request.body));
  if (!signatureMatches([signature], expected)) throw unauthorized("signature does not match");
}
