// hookhost plugin `{{id}}`: accepts every delivery and emits one `{{id}}.received`
// event keyed by the SHA-256 of the body. Replace handleWebhook with your provider's
// logic: verify its signature with hmacSha256 and constantTimeEq, read secrets with
// get() from hookhost:plugin/config, refuse with `throw { tag: "unauthorized", val: "..." }`.

import { sha256 } from "hookhost:plugin/crypto@0.1.0";

export const guest = {
  describe() {
    return {
      name: "{{id}}",
      version: "0.1.0",
      description: "TODO: what this plugin does",
      emits: ["{{id}}.*"],
      pollIntervalSeconds: undefined,
      subscriptions: [],
    };
  },

  handleWebhook(request) {
    const id = Array.from(sha256(request.body), (b) => b.toString(16).padStart(2, "0")).join("");
    return {
      response: {
        status: 200,
        headers: [["content-type", "application/json"]],
        body: new TextEncoder().encode('{"ok":true}'),
      },
      events: [
        { id, kind: "{{id}}.received", subject: undefined, payload: JSON.stringify({ size: request.body.length }) },
      ],
    };
  },

  poll(_cursor) {
    throw { tag: "internal", val: "{{id}} does not poll" };
  },

  onEvent(_event) {
    throw { tag: "internal", val: "{{id}} subscribes to no events" };
  },
};
