// hookhost plugin `{{id}}`: accepts every delivery and emits one `{{id}}.received`
// event keyed by the SHA-256 of the body. Replace handleWebhook with your provider's
// logic: read secrets with requiredConfig, headers with requiredHeader, verify the
// signature with hmacSha256 and signatureMatches (the host computes and compares),
// refuse with `throw unauthorized("...")`. "./hookhost.js" is the SDK
// ({{repo}}/plugins/sdk/js/hookhost.js), which build.sh copies next to this file.

import { sha256 } from "hookhost:plugin/crypto@0.2.0";
import { hex, jsonResponse, manifest, plugin } from "./hookhost.js";

export const guest = plugin("{{id}}", {
  manifest: manifest("{{id}}", "0.1.0", "TODO: what this plugin does", ["{{id}}.*"]),

  handleWebhook(request) {
    return {
      response: jsonResponse(200, '{"ok":true}'),
      events: [
        {
          id: hex(sha256(request.body)),
          kind: "{{id}}.received",
          subject: undefined,
          payload: JSON.stringify({ size: request.body.length }),
        },
      ],
    };
  },
});
