// Shopify: verifies `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body
// under config `secret`, the app's client secret) and emits one event per delivery:
// id = `X-Shopify-Webhook-Id`, kind = `shopify.` + `X-Shopify-Topic` with `/` as `.`
// (`orders/create` is `shopify.orders.create`), subject = `X-Shopify-Shop-Domain`,
// payload = the body as sent (JSON webhooks; the XML format is refused with 400).
//
// Shopify signs no timestamp, so a replay cannot be told by its age: a delivery
// sent again carries the same webhook id, and the host stores an id once.

import {
  badRequest, base64Decode, header, hmacSha256, jsonResponse, manifest, plugin,
  requiredConfig, requiredHeader, signatureMatches, unauthorized,
} from "./hookhost.js";

const decoder = new TextDecoder();

export const guest = plugin("shopify", {
  manifest: manifest("Shopify", "0.1.0", "Shopify webhooks, verified with X-Shopify-Hmac-Sha256", ["shopify.*"]),

  handleWebhook(request) {
    verify(request, requiredConfig("secret"));

    // Authentic but unusable from here on: Shopify's mistake, 400.
    const id = header(request, "X-Shopify-Webhook-Id") || "";
    const topic = header(request, "X-Shopify-Topic") || "";
    if (!/^[A-Za-z0-9_.:-]{1,255}$/.test(id)) {
      throw badRequest("X-Shopify-Webhook-Id must be 1-255 characters of A-Z a-z 0-9 _ . : -");
    }
    // Topics are `resource/action` (`orders/create`, `app/uninstalled`).
    if (!/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/.test(topic) || topic.length > 200) {
      throw badRequest("X-Shopify-Topic is not a topic such as orders/create");
    }
    const payload = decoder.decode(request.body);
    try {
      JSON.parse(payload);
    } catch (error) {
      throw badRequest(`body is not JSON (only the JSON webhook format is supported): ${error}`);
    }
    const kind = `shopify.${topic.replaceAll("/", ".")}`;
    return {
      response: jsonResponse(200, `{"ok":true,"event":{"id":"${id}","kind":"${kind}"}}`),
      events: [{ id, kind, subject: header(request, "X-Shopify-Shop-Domain") || undefined, payload }],
    };
  },
});

// The header is the digest in standard base64; it is decoded and compared as
// bytes, so nothing but the 32 bytes of the right digest passes.
function verify(request, secret) {
  const digest = base64Decode(requiredHeader(request, "X-Shopify-Hmac-Sha256"));
  const expected = hmacSha256(secret, request.body);
  if (digest === null || !signatureMatches([digest], expected)) {
    throw unauthorized("X-Shopify-Hmac-Sha256 does not match");
  }
}
