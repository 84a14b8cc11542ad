// Standard Webhooks receiver, the JavaScript one of five identical implementations;
// ../STANDARD-WEBHOOKS.md is the specification all five follow step by step.

import {
  badRequest, base64Decode, base64Encode, checkTimestamp, hmacSha256, internal,
  jsonResponse, manifest, plugin, requiredConfig, requiredHeader, signatureMatches,
  unauthorized,
} from "./hookhost.js";

const TOLERANCE_SECONDS = 300;

export const guest = plugin("standard-js", {
  describe() {
    return manifest("Standard Webhooks (JavaScript)", "0.1.0",
      "Standard Webhooks receiver (webhook-signature v1)", ["standard.webhook"]);
  },

  handleWebhook(request) {
    let secret = requiredConfig("secret");
    if (secret.startsWith("whsec_")) secret = secret.slice("whsec_".length);
    const key = base64Decode(secret);
    if (key === null) throw internal("config `secret` is not valid base64");

    const id = requiredHeader(request, "webhook-id");
    const timestamp = requiredHeader(request, "webhook-timestamp");
    const signatures = requiredHeader(request, "webhook-signature");
    checkTimestamp(timestamp, "webhook-timestamp", TOLERANCE_SECONDS);

    const expected = "v1," + base64Encode(hmacSha256(key, `${id}.${timestamp}.`, request.body));
    if (!signatureMatches(signatures.split(" "), expected)) {
      throw unauthorized("no matching signature");
    }

    if (!/^[A-Za-z0-9_.:-]{1,255}$/.test(id)) {
      throw badRequest("webhook-id must be 1-255 characters of A-Z a-z 0-9 _ . : -");
    }
    return {
      response: jsonResponse(200, `{"ok":true,"event":{"id":"${id}","kind":"standard.webhook"}}`),
      events: [
        {
          id,
          kind: "standard.webhook",
          subject: undefined,
          payload: `{"body_base64":"${base64Encode(request.body)}"}`,
        },
      ],
    };
  },
});
