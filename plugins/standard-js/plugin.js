// Standard Webhooks receiver, the JavaScript one of five identical implementations;
// ../STANDARD-WEBHOOKS.md is the specification all five follow step by step.

import { get } from "hookhost:plugin/config@0.1.0";
import { hmacSha256, constantTimeEq } from "hookhost:plugin/crypto@0.1.0";

const TOLERANCE_SECONDS = 300;
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const encoder = new TextEncoder();

export const guest = {
  describe() {
    return {
      name: "Standard Webhooks (JavaScript)",
      version: "0.1.0",
      description: "Standard Webhooks receiver (webhook-signature v1)",
      emits: ["standard.webhook"],
      pollIntervalSeconds: undefined,
      subscriptions: [],
    };
  },

  handleWebhook(request) {
    let secret = get("secret");
    if (!secret) throw internal("config `secret` is not set");
    if (secret.startsWith("whsec_")) secret = secret.slice("whsec_".length);
    const key = base64Decode(secret);
    if (key === null) throw internal("config `secret` is not valid base64");

    const id = requiredHeader(request, "webhook-id");
    const timestamp = requiredHeader(request, "webhook-timestamp");
    const signatures = requiredHeader(request, "webhook-signature");

    if (!/^[0-9]{1,15}$/.test(timestamp)) {
      throw unauthorized("malformed webhook-timestamp header");
    }
    const now = Math.floor(Date.now() / 1000);
    if (Math.abs(now - Number(timestamp)) > TOLERANCE_SECONDS) {
      throw unauthorized("webhook-timestamp is outside the 300 s tolerance");
    }

    const prefix = encoder.encode(`${id}.${timestamp}.`);
    const signed = new Uint8Array(prefix.length + request.body.length);
    signed.set(prefix, 0);
    signed.set(request.body, prefix.length);
    const expected = encoder.encode("v1," + base64Encode(hmacSha256(key, signed)));
    const authentic = signatures
      .split(" ")
      .filter((entry) => entry !== "")
      .some((entry) => constantTimeEq(encoder.encode(entry), expected));
    if (!authentic) throw unauthorized("no matching signature");

    if (!/^[A-Za-z0-9_.:-]{1,255}$/.test(id)) {
      throw badRequest("webhook-id must be 1-255 characters of A-Z a-z 0-9 _ . : -");
    }
    const reply = `{"ok":true,"event":{"id":"${id}","kind":"standard.webhook"}}`;
    return {
      response: {
        status: 200,
        headers: [["content-type", "application/json"]],
        body: encoder.encode(reply),
      },
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

  poll(_cursor) {
    throw internal("standard-js does not poll");
  },

  onEvent(_event) {
    throw internal("standard-js subscribes to no events");
  },
};

function requiredHeader(request, name) {
  const found = request.headers.find(([headerName]) => headerName.toLowerCase() === name);
  if (!found || found[1] === "") throw unauthorized(`missing ${name} header`);
  return found[1];
}

const unauthorized = (message) => ({ tag: "unauthorized", val: message });
const badRequest = (message) => ({ tag: "bad-request", val: message });
const internal = (message) => ({ tag: "internal", val: message });

// Hand-written rather than btoa/atob: those work on "binary strings", which would
// mean building a string of up to a million characters for a 1 MiB body.
function base64Encode(bytes) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + "==";
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + "=";
  }
  return out;
}

// Padded standard base64 only; null for anything else.
function base64Decode(text) {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - padding);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text[i + j];
      n = (n << 6) | (c === "=" ? 0 : ALPHABET.indexOf(c));
    }
    if (o < out.length) out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}
