// Standard Webhooks receiver, the JavaScript one of five identical implementations;
// ../STANDARD-WEBHOOKS.md is the specification all five follow step by step.

import {
  badRequest, base64Decode, base64Encode, checkTimestamp, ed25519Base64Matches, hmacSha256,
  internal, joinBytes, jsonResponse, manifest, optionalConfig, plugin, requiredHeader,
  signatureMatches, signaturesOfVersion, unauthorized,
} from "./hookhost.js";

const TOLERANCE_SECONDS = 300;

export const guest = plugin("standard-js", {
  manifest: manifest("Standard Webhooks (JavaScript)", "0.1.0",
    "Standard Webhooks receiver (webhook-signature v1 and v1a)", ["standard.webhook"]),

  handleWebhook(request) {
    const secret = optionalConfig("secret");
    const publicKey = optionalConfig("public_key");
    if (!secret && !publicKey) throw internal("config `secret` or `public_key` must be set");
    let key = null;
    if (secret) {
      key = base64Decode(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret);
      if (key === null) throw internal("config `secret` is not valid base64");
    }
    let verifyKey = null;
    if (publicKey) {
      verifyKey = base64Decode(publicKey.startsWith("whpk_") ? publicKey.slice("whpk_".length) : publicKey);
      if (verifyKey === null || verifyKey.length !== 32) {
        throw internal("config `public_key` is not the base64 of a 32-byte Ed25519 key");
      }
    }

    const id = requiredHeader(request, "webhook-id");
    const timestamp = requiredHeader(request, "webhook-timestamp");
    const signatures = requiredHeader(request, "webhook-signature");
    checkTimestamp(timestamp, "webhook-timestamp", TOLERANCE_SECONDS);

    const signed = joinBytes(`${id}.${timestamp}.`, request.body);
    const authentic =
      (key !== null &&
        signatureMatches(signaturesOfVersion(signatures, "v1"), base64Encode(hmacSha256(key, signed)))) ||
      (verifyKey !== null &&
        signaturesOfVersion(signatures, "v1a").some((value) => ed25519Base64Matches(verifyKey, signed, value)));
    if (!authentic) throw unauthorized("no matching signature");

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
