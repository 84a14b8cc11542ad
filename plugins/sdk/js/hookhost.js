// The hookhost plugin SDK for JavaScript: what every plugin needs besides its
// provider logic. `scripts/build-plugin js` copies this file next to the plugin's
// own, so a plugin imports it as "./hookhost.js":
//
//     import { plugin, jsonResponse, manifest, requiredHeader, unauthorized } from "./hookhost.js";
//     export const guest = plugin("acme", {
//       manifest: manifest("Acme", "0.1.0", "...", ["acme.*"]),
//       handleWebhook(request) { ... },
//     });
//
// A plugin whose manifest depends on its config gives a `describe()` method instead.
//
// Errors: `throw unauthorized("...")` (and badRequest, unavailable, internal) refuses
// a call with that `plugin-error` case; any other exception is a trap. Signatures are
// computed and compared by the host (`crypto`), never in JavaScript.

import { get } from "hookhost:plugin/config@0.2.0";
import { hmacSha256 as hostHmacSha256, constantTimeEq } from "hookhost:plugin/crypto@0.2.0";
// What only 0.2.0's crypto has is read from the namespace: a named import of it would
// keep a plugin built against 0.1.0 (whose crypto lacks it) from starting at all.
import * as hostCrypto from "hookhost:plugin/crypto@0.2.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// The `guest` export: `handlers` with defaults for what a webhook-only plugin does
// not do; `id` names the plugin in their errors. Its `describe` answers the
// `manifest` field unless `handlers` has a `describe()` of its own.
export function plugin(id, { manifest: declared, ...handlers }) {
  return {
    describe() {
      if (declared === undefined) throw new Error(`${id}: give plugin() a manifest or a describe()`);
      return declared;
    },
    poll(_cursor) {
      throw internal(`${id} does not poll`);
    },
    onEvent(_event) {
      throw internal(`${id} subscribes to no events`);
    },
    ...handlers,
  };
}

// The manifest (`plugin`'s `manifest` field, or what `describe` returns); by
// default the plugin neither polls nor subscribes to events.
export function manifest(name, version, description, emits, { pollIntervalSeconds, subscriptions = [] } = {}) {
  return { name, version, description, emits, pollIntervalSeconds, subscriptions };
}

// Not authentic (HTTP 401): `throw unauthorized("no matching signature")`.
export const unauthorized = (message) => ({ tag: "unauthorized", val: message });
// Malformed (HTTP 400).
export const badRequest = (message) => ({ tag: "bad-request", val: message });
// Something the plugin depends on is down; the caller should retry (HTTP 503).
export const unavailable = (message) => ({ tag: "unavailable", val: message });
// A bug or a setup mistake in the plugin (HTTP 500).
export const internal = (message) => ({ tag: "internal", val: message });

// The first value of header `name`, compared without case; undefined when absent.
export function header(request, name) {
  const lower = name.toLowerCase();
  const found = request.headers.find(([headerName]) => headerName.toLowerCase() === lower);
  return found ? found[1] : undefined;
}

// The first value of header `name`; a missing or empty one refuses the call with
// `unauthorized("missing <name> header")`, `name` as given.
export function requiredHeader(request, name) {
  const value = header(request, name);
  if (!value) throw unauthorized(`missing ${name} header`);
  return value;
}

// Config `key`; undefined when it is unset or empty (for a setting that may be left
// out).
export function optionalConfig(key) {
  return get(key) || undefined;
}

// Config `key`; unset or empty fails the call with
// `internal("config `<key>` is not set")`, since only the operator can fix it.
export function requiredConfig(key) {
  const value = get(key);
  if (!value) throw internal(`config \`${key}\` is not set`);
  return value;
}

// The parts (strings as UTF-8, or Uint8Arrays) joined into one Uint8Array; a single
// Uint8Array part is returned as it is.
export function joinBytes(...parts) {
  const bytes = parts.map((part) => (typeof part === "string" ? encoder.encode(part) : part));
  if (bytes.length === 1) return bytes[0];
  const joined = new Uint8Array(bytes.reduce((total, part) => total + part.length, 0));
  let at = 0;
  for (const part of bytes) {
    joined.set(part, at);
    at += part.length;
  }
  return joined;
}

// HMAC-SHA256 under `key` of the parts joined, computed by the host; the key and
// each part are a string (as UTF-8) or a Uint8Array.
export function hmacSha256(key, ...parts) {
  return hostHmacSha256(typeof key === "string" ? encoder.encode(key) : key, joinBytes(...parts));
}

// Whether `signature` (Uint8Array) is a valid Ed25519 signature (RFC 8032) of
// `message` (string as UTF-8, or Uint8Array) under `publicKey` (32 bytes), verified
// strictly by the host: a non-canonical signature, a small-order key, or a key or
// signature of the wrong length is false, never an error. Needs
// hookhost:plugin@0.2.0 (built against 0.1.0, calling it throws).
export function ed25519Verify(publicKey, message, signature) {
  return hostCrypto.ed25519Verify(publicKey, joinBytes(message), signature);
}

// Whether `signatureBase64`, an Ed25519 signature as Standard Webhooks and others
// send it (standard padded base64), is a valid signature of `message` under
// `publicKey`. Only the canonical encoding of the bytes is accepted, so that two
// texts never stand for one signature (and every SDK accepts the same strings).
export function ed25519Base64Matches(publicKey, message, signatureBase64) {
  const signature = base64Decode(signatureBase64);
  return (
    signature !== null &&
    base64Encode(signature) === signatureBase64 &&
    ed25519Verify(publicKey, message, signature)
  );
}

// The values of the entries of `signatures` (space-separated `<version>,<value>`, as
// Standard Webhooks' `webhook-signature` sends them, several during a key rotation)
// whose version is `version`, in order. Empty entries, entries without a comma and
// other versions are skipped: a receiver checks each value it can and accepts the
// delivery when any one matches.
export function signaturesOfVersion(signatures, version) {
  const prefix = version + ",";
  return signatures
    .split(" ")
    .filter((entry) => entry.startsWith(prefix))
    .map((entry) => entry.slice(prefix.length));
}

// Whether any candidate (string or Uint8Array) equals `expected`, each compared by
// the host in constant time; empty candidates never match.
export function signatureMatches(candidates, expected) {
  const want = typeof expected === "string" ? encoder.encode(expected) : expected;
  return candidates.some(
    (candidate) =>
      candidate.length > 0 &&
      constantTimeEq(typeof candidate === "string" ? encoder.encode(candidate) : candidate, want),
  );
}

// How many seconds Unix time `text` is from now, past or future; undefined unless
// it is 1-15 ASCII digits.
export function timestampAge(text) {
  if (!/^[0-9]{1,15}$/.test(text)) return undefined;
  return Math.abs(Math.floor(Date.now() / 1000) - Number(text));
}

// Refuses a replay: `text`, from header `name`, must be Unix seconds within
// `toleranceSeconds` of now, else `unauthorized("malformed <name> header")` or
// `unauthorized("<name> is outside the <tolerance> s tolerance")`.
export function checkTimestamp(text, name, toleranceSeconds) {
  const age = timestampAge(text);
  if (age === undefined) throw unauthorized(`malformed ${name} header`);
  if (age > toleranceSeconds) throw unauthorized(`${name} is outside the ${toleranceSeconds} s tolerance`);
}

// An HTTP response of `text`, JSON the plugin wrote (JSON.stringify, or a template
// string when that is all it needs), with `content-type: application/json`. Text
// rather than a value, as in the other languages' SDKs: a plugin whose reply is a
// fixed shape skips JSON.stringify, which costs in SpiderMonkey's interpreter.
export function jsonResponse(status, text) {
  return {
    status,
    headers: [["content-type", "application/json"]],
    body: encoder.encode(text),
  };
}

// An HTTP response of plain `text`, with `content-type: text/plain` (handshakes
// that must echo a token exactly, such as Meta's `hub.challenge`).
export function textResponse(status, text) {
  return {
    status,
    headers: [["content-type", "text/plain"]],
    body: encoder.encode(text),
  };
}

// The request body parsed as JSON, which must be an object; anything else refuses
// the call with `badRequest("body is not a JSON object")` (or "... not JSON: ...").
export function jsonBody(request) {
  let body;
  try {
    body = JSON.parse(decoder.decode(request.body));
  } catch (error) {
    throw badRequest(`body is not JSON: ${error}`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest("body is not a JSON object");
  }
  return body;
}

// The first value of parameter `name` in `query`, a raw query string (the
// request's `query`) or an application/x-www-form-urlencoded body, decoded as
// forms are (`+` is a space, `%XX` a byte of UTF-8); undefined when absent. Names
// are compared after decoding, with case. A value of `name` that is not valid
// percent-encoded UTF-8 refuses the call with `badRequest`; another parameter's
// never does.
export function queryParam(query, name) {
  for (const pair of query.split("&")) {
    const at = pair.indexOf("=");
    if (formDecode(at === -1 ? pair : pair.slice(0, at)) !== name) continue;
    const value = formDecode(at === -1 ? "" : pair.slice(at + 1));
    if (value === undefined) throw badRequest(`query parameter ${name} is not valid percent-encoded UTF-8`);
    return value;
  }
  return undefined;
}

// `text` form-decoded; undefined when it is not valid percent-encoded UTF-8.
function formDecode(text) {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return undefined;
  }
}

// Lowercase hex of bytes.
export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Standard padded base64 of bytes, by the engine's native `toBase64` (TC39
// "Uint8Array to/from base64", which the SpiderMonkey of the pinned ComponentizeJS
// has): one pass in native code, where anything written here runs in the
// interpreter (there is no JIT inside wasm). Any typed array is taken as it is: the
// body a plugin gets is not an `instanceof` this realm's Uint8Array, and copying it
// element by element cost more than the whole call.
export function base64Encode(bytes) {
  return (ArrayBuffer.isView(bytes) ? bytes : Uint8Array.from(bytes)).toBase64();
}

// The bytes of standard padded base64; null for anything else. The pattern is
// checked here (the native decoder would also skip whitespace and accept a missing
// pad); the decoding itself is the engine's `Uint8Array.fromBase64`.
const STANDARD_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
export function base64Decode(text) {
  if (text.length % 4 !== 0 || !STANDARD_BASE64.test(text)) return null;
  return Uint8Array.fromBase64(text);
}
