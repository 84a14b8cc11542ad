// Slack Events API: verifies `X-Slack-Signature` (`v0=` + hex HMAC-SHA256 of
// `v0:{timestamp}:{body}` under config `signing_secret`) with
// `X-Slack-Request-Timestamp` within 300 s, answers the `url_verification`
// challenge, and emits one event per `event_callback`: id = the body's `event_id`,
// kind = `slack.<event.type>` (`slack.message`), subject = the team id,
// payload = the body. Other callback types are acknowledged without an event.

import { get } from "hookhost:plugin/config@0.1.0";
import { hmacSha256, constantTimeEq } from "hookhost:plugin/crypto@0.1.0";

const TOLERANCE_SECONDS = 300;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const guest = {
  describe() {
    return {
      name: "Slack",
      version: "0.1.0",
      description: "Slack Events API, verified with X-Slack-Signature",
      emits: ["slack.*"],
      pollIntervalSeconds: undefined,
      subscriptions: [],
    };
  },

  handleWebhook(request) {
    const secret = get("signing_secret");
    if (!secret) throw internal("config `signing_secret` is not set");
    verify(request, secret);

    let body;
    try {
      body = JSON.parse(decoder.decode(request.body));
    } catch (error) {
      throw badRequest(`body is not JSON: ${error}`);
    }
    if (body === null || typeof body !== "object") throw badRequest("body is not a JSON object");

    if (body.type === "url_verification") {
      if (typeof body.challenge !== "string") throw badRequest("url_verification without a challenge");
      return { response: json(200, { challenge: body.challenge }), events: [] };
    }
    if (body.type !== "event_callback") {
      return { response: json(200, { ok: true }), events: [] };
    }
    const eventId = body.event_id;
    const eventType = body.event && body.event.type;
    if (typeof eventId !== "string" || eventId === "") throw badRequest("body has no string `event_id`");
    if (typeof eventType !== "string" || eventType === "") throw badRequest("body has no string `event.type`");
    const kind = `slack.${eventType}`;
    return {
      response: json(200, { ok: true, event: { id: eventId, kind } }),
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

  poll(_cursor) {
    throw internal("slack does not poll");
  },

  onEvent(_event) {
    throw internal("slack subscribes to no events");
  },
};

function verify(request, secret) {
  const timestamp = header(request, "x-slack-request-timestamp");
  const signature = header(request, "x-slack-signature");
  if (!timestamp) throw unauthorized("missing X-Slack-Request-Timestamp header");
  if (!signature) throw unauthorized("missing X-Slack-Signature header");
  if (!/^[0-9]{1,15}$/.test(timestamp)) throw unauthorized("malformed X-Slack-Request-Timestamp header");
  // Slack's own guard against replays: a signature is only good for five minutes.
  if (Math.abs(Math.floor(Date.now() / 1000) - Number(timestamp)) > TOLERANCE_SECONDS) {
    throw unauthorized("X-Slack-Request-Timestamp is outside the 300 s tolerance");
  }
  const prefix = encoder.encode(`v0:${timestamp}:`);
  const signed = new Uint8Array(prefix.length + request.body.length);
  signed.set(prefix, 0);
  signed.set(request.body, prefix.length);
  const expected = encoder.encode("v0=" + hex(hmacSha256(encoder.encode(secret), signed)));
  if (!constantTimeEq(encoder.encode(signature), expected)) {
    throw unauthorized("signature does not match");
  }
}

function header(request, name) {
  const found = request.headers.find(([headerName]) => headerName.toLowerCase() === name);
  return found ? found[1] : undefined;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function json(status, value) {
  return {
    status,
    headers: [["content-type", "application/json"]],
    body: encoder.encode(JSON.stringify(value)),
  };
}

const unauthorized = (message) => ({ tag: "unauthorized", val: message });
const badRequest = (message) => ({ tag: "bad-request", val: message });
const internal = (message) => ({ tag: "internal", val: message });
