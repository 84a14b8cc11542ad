// Standard Webhooks receiver, the C one of five identical implementations;
// ../STANDARD-WEBHOOKS.md is the specification all five follow step by step.
// Ownership of what goes in and out: see the SDK, plugins/sdk/c/hookhost.h.

#include <stdlib.h>

#include "hookhost.h"

#define TOLERANCE_SECONDS 300

static bool all_bytes(const plugin_string_t *s, size_t max, const char *allowed) {
    if (s->len < 1 || s->len > max) return false;
    for (size_t i = 0; i < s->len; i++) {
        if (s->ptr[i] == 0 || !strchr(allowed, s->ptr[i])) return false;
    }
    return true;
}

// The bytes of config `text` after the optional `prefix`, standard padded base64.
static bool decode_key(plugin_string_t *text, const char *prefix, plugin_list_u8_t *key) {
    size_t n = strlen(prefix);
    size_t skip = (text->len >= n && memcmp(text->ptr, prefix, n) == 0) ? n : 0;
    bool ok = hookhost_base64_decode(text->ptr + skip, text->len - skip, key);
    plugin_string_free(text);
    return ok;
}

static bool handle(hookhost_request_t *request, hookhost_outcome_t *ret, hookhost_error_t *err) {
    plugin_string_t secret, public_key;
    bool has_secret = hookhost_config("secret", &secret);
    bool has_public_key = hookhost_config("public_key", &public_key);
    if (!has_secret && !has_public_key) {
        return hookhost_internal(err, "config `secret` or `public_key` must be set");
    }
    plugin_list_u8_t key = {NULL, 0}, verify_key = {NULL, 0};
    if (has_secret && !decode_key(&secret, "whsec_", &key)) {
        if (has_public_key) plugin_string_free(&public_key);
        return hookhost_internal(err, "config `secret` is not valid base64");
    }
    if (has_public_key) {
        bool decoded = decode_key(&public_key, "whpk_", &verify_key);
        if (!decoded || verify_key.len != 32) {
            free(key.ptr);
            if (decoded) free(verify_key.ptr);
            return hookhost_internal(err,
                                     "config `public_key` is not the base64 of a 32-byte Ed25519 key");
        }
    }

    bool authentic = false;
    const plugin_string_t *id, *timestamp, *signatures;
    if ((id = hookhost_required_header(request, "webhook-id", err)) &&
        (timestamp = hookhost_required_header(request, "webhook-timestamp", err)) &&
        (signatures = hookhost_required_header(request, "webhook-signature", err)) &&
        hookhost_check_timestamp(timestamp, "webhook-timestamp", TOLERANCE_SECONDS, err)) {
        const plugin_list_u8_t signed_parts[] = {hookhost_bytes(id), hookhost_text("."),
                                                 hookhost_bytes(timestamp), hookhost_text("."),
                                                 request->body};
        plugin_list_u8_t signed_content;
        hookhost_join(signed_parts, 5, &signed_content);
        if (has_secret) {
            plugin_list_u8_t mac;
            hookhost_hmac_sha256(&key, &signed_content, 1, &mac);
            char *mac_b64 = hookhost_base64_encode(mac.ptr, mac.len);
            plugin_list_u8_free(&mac);
            char *expected = hookhost_format("v1,%s", mac_b64);
            free(mac_b64);
            authentic = hookhost_signature_in_list(signatures, ' ', expected);
            free(expected);
        }
        plugin_list_u8_t value;
        for (size_t at = 0; has_public_key && !authentic &&
                            hookhost_next_signature(signatures, "v1a", &at, &value);) {
            authentic = hookhost_ed25519_base64_matches(&verify_key, &signed_content, value.ptr,
                                                        value.len);
        }
        free(signed_content.ptr);
        if (!authentic) hookhost_unauthorized(err, "no matching signature");
    }
    free(key.ptr);
    free(verify_key.ptr);
    if (!authentic) return false;

    if (!all_bytes(id, 255, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")) {
        return hookhost_bad_request(err, "webhook-id must be 1-255 characters of A-Z a-z 0-9 _ . : -");
    }

    hookhost_json_response(&ret->response, 200,
                           "{\"ok\":true,\"event\":{\"id\":\"%.*s\",\"kind\":\"standard.webhook\"}}",
                           (int)id->len, id->ptr);
    char *body_b64 = hookhost_base64_encode(request->body.ptr, request->body.len);
    hookhost_event_t *event = hookhost_emit(ret);
    plugin_string_dup_n(&event->id, (const char *)id->ptr, id->len);
    plugin_string_dup(&event->kind, "standard.webhook");
    hookhost_string_format(&event->payload, "{\"body_base64\":\"%s\"}", body_b64);
    free(body_b64);
    return true;
}

HOOKHOST_MANIFEST("Standard Webhooks (C)", "0.1.0",
                  "Standard Webhooks receiver (webhook-signature v1 and v1a)", "standard.webhook")
HOOKHOST_HANDLE_WEBHOOK(handle)
HOOKHOST_DOES_NOT_POLL("standard-c")
HOOKHOST_HANDLES_NO_EVENTS("standard-c")
