// hookhost plugin `{{id}}`: accepts every delivery and emits one `{{id}}.received`
// event keyed by the SHA-256 of the body. Replace handle with your provider's logic:
// read secrets with hookhost_required_config, headers with hookhost_required_header,
// verify the signature with hookhost_hmac_sha256 and hookhost_signature_in_list (the
// host computes and compares), refuse with `return hookhost_unauthorized(err, "...")`.
// The SDK, hookhost.h ({{repo}}/plugins/sdk/c), says who frees what; build.sh
// compiles it with this file.

#include "hookhost.h"

static bool handle(hookhost_request_t *request, hookhost_outcome_t *ret, hookhost_error_t *err) {
    (void)err;
    plugin_list_u8_t digest;
    hookhost_plugin_crypto_sha256(&request->body, &digest);
    char id[65];
    hookhost_hex(digest.ptr, digest.len < 32 ? digest.len : 32, id);
    plugin_list_u8_free(&digest);

    hookhost_json_response(&ret->response, 200, "{\"ok\":true}");
    hookhost_event_t *event = hookhost_emit(ret);
    plugin_string_dup(&event->id, id);
    plugin_string_dup(&event->kind, "{{id}}.received");
    hookhost_string_format(&event->payload, "{\"size\":%zu}", request->body.len);
    return true;
}

HOOKHOST_MANIFEST("{{id}}", "0.1.0", "TODO: what this plugin does", "{{id}}.*")
HOOKHOST_HANDLE_WEBHOOK(handle)
HOOKHOST_DOES_NOT_POLL("{{id}}")
HOOKHOST_HANDLES_NO_EVENTS("{{id}}")
