// Meta Webhooks (WhatsApp Business, Messenger, Instagram, Pages): one plugin for
// every Meta product, since all share the scheme.
//
// - `GET ?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...`, the
//   subscription handshake, is answered with the challenge as `text/plain` 200
//   when the token equals config `verify_token`, and 403 otherwise, as Meta's
//   samples do. Nothing is stored.
// - `POST` notifications must carry `X-Hub-Signature-256: sha256=` + hex
//   HMAC-SHA256 of the raw body under config `app_secret`. Each item of each entry
//   becomes one event: `entry[].changes[]` (WhatsApp, Instagram, Pages) as kind
//   `meta.<object>.<field>` (`meta.whatsapp_business_account.messages`), and
//   Messenger's and Instagram messaging's `entry[].messaging[]` and
//   `entry[].standby[]` as `meta.<object>.messaging.<type>` and
//   `meta.<object>.standby.<type>`, the type being the item's key besides
//   `sender`, `recipient` and `timestamp` (`meta.page.messaging.message`).
//   Subject = the entry's id (the page, WhatsApp Business account or Instagram
//   account); payload = `{"object", "entry_id", "time", "change"|"messaging"|"standby": item}`.
//
// Event ids: a message's own id (`message.mid`) for a messaging message, else the
// entry id and a digest of what the item says, so that a notification Meta sends
// again, batched alike or not, is stored once. Meta signs no timestamp: replays
// are caught by these ids, not by age.

import { sha256 } from "hookhost:plugin/crypto@0.2.0";
import {
  badRequest, hex, hmacSha256, jsonBody, jsonResponse, manifest, plugin, queryParam,
  requiredConfig, requiredHeader, signatureMatches, textResponse, unauthorized,
} from "./hookhost.js";

const encoder = new TextEncoder();
const NAME = /^[A-Za-z0-9_]{1,64}$/;
const ENTRY_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
// Where each kind of item is in an entry, and its key in the event's payload.
const LISTS = [
  ["changes", "change"],
  ["messaging", "messaging"],
  ["standby", "standby"],
];
const MESSAGING_ENVELOPE = new Set(["sender", "recipient", "timestamp"]);

export const guest = plugin("meta", {
  manifest: manifest("Meta (WhatsApp, Messenger, Instagram)", "0.1.0",
    "Meta Webhooks: hub.challenge handshake, X-Hub-Signature-256", ["meta.*"]),

  handleWebhook(request) {
    if (request.method === "GET") return subscription(request.query);
    if (request.method !== "POST") {
      return { response: textResponse(405, "Meta webhooks are GET (handshake) or POST"), events: [] };
    }
    verify(request, requiredConfig("app_secret"));

    const body = jsonBody(request);
    if (typeof body.object !== "string" || !NAME.test(body.object)) {
      throw badRequest("body has no `object` such as page or whatsapp_business_account");
    }
    if (!Array.isArray(body.entry)) throw badRequest("body has no `entry` array");
    const events = body.entry.flatMap((entry) => entryEvents(body.object, entry));
    return { response: jsonResponse(200, `{"ok":true,"events":${events.length}}`), events };
  },
});

function subscription(query) {
  const verifyToken = requiredConfig("verify_token");
  const token = queryParam(query, "hub.verify_token");
  if (queryParam(query, "hub.mode") !== "subscribe" || token === undefined
      || !signatureMatches([token], verifyToken)) {
    return { response: textResponse(403, "hub.verify_token does not match"), events: [] };
  }
  const challenge = queryParam(query, "hub.challenge");
  if (!challenge) throw badRequest("no hub.challenge to answer");
  return { response: textResponse(200, challenge), events: [] };
}

// `sha256=` and the digest in hex, lower case as Meta sends it; hex in upper case
// is the same digest, so it passes too.
function verify(request, secret) {
  const signature = requiredHeader(request, "X-Hub-Signature-256").toLowerCase();
  const expected = "sha256=" + hex(hmacSha256(secret, request.body));
  if (!signatureMatches([signature], expected)) throw unauthorized("X-Hub-Signature-256 does not match");
}

function entryEvents(object, entry) {
  if (entry === null || typeof entry !== "object") throw badRequest("an entry is not an object");
  const entryId = typeof entry.id === "number" ? String(entry.id) : entry.id;
  if (typeof entryId !== "string" || !ENTRY_ID.test(entryId)) throw badRequest("an entry has no valid `id`");
  const time = typeof entry.time === "number" ? entry.time : undefined;
  const events = [];
  for (const [list, key] of LISTS) {
    const items = entry[list];
    if (items === undefined) continue;
    if (!Array.isArray(items)) throw badRequest(`entry ${entryId}: \`${list}\` is not an array`);
    for (const item of items) {
      if (item === null || typeof item !== "object") throw badRequest(`entry ${entryId}: an item is not an object`);
      const type = itemType(list, item);
      const itemJson = JSON.stringify(item);
      const mid = list === "messaging" && item.message && item.message.mid;
      events.push({
        id: typeof mid === "string" && ENTRY_ID.test(mid)
          ? mid
          : `${entryId}.${hex(sha256(encoder.encode(`${object}\n${entryId}\n${time}\n${list}\n${itemJson}`))).slice(0, 32)}`,
        kind: list === "changes" ? `meta.${object}.${type}` : `meta.${object}.${list}.${type}`,
        subject: entryId,
        payload: `{"object":"${object}","entry_id":"${entryId}",${time === undefined ? "" : `"time":${time},`}"${key}":${itemJson}}`,
      });
    }
  }
  return events;
}

// A change's `field`; a messaging item's first key besides the envelope
// (`message`, `postback`, `read`, `reaction`, ...).
function itemType(list, item) {
  const type = list === "changes"
    ? item.field
    : Object.keys(item).find((key) => !MESSAGING_ENVELOPE.has(key));
  if (typeof type !== "string" || !NAME.test(type)) {
    throw badRequest(list === "changes" ? "a change has no valid `field`" : `a ${list} item has no event type`);
  }
  return type;
}
