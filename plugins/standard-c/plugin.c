// Standard Webhooks receiver, the C one of five identical implementations;
// ../STANDARD-WEBHOOKS.md is the specification all five follow step by step.
//
// Ownership, as wit-bindgen's C bindings define it: the request argument and what
// host calls return belong to this code and are freed here; everything returned to
// the host must be malloc'd (plugin_string_dup), because the generated post-return
// function frees it.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin.h"

#define TOLERANCE_SECONDS 300

typedef hookhost_plugin_types_plugin_error_t plugin_error_t;

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool fail(plugin_error_t *err, uint8_t tag, const char *message) {
    err->tag = tag;
    // Every case of the variant holds a string in the same place.
    plugin_string_dup(&err->val.internal, message);
    return false;
}

// Standard padded base64 of `len` bytes; a NUL-terminated malloc'd string.
static char *base64_encode(const uint8_t *data, size_t len) {
    char *out = malloc((len + 2) / 3 * 4 + 1);
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t n = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = ALPHABET[n >> 18];
        out[o++] = ALPHABET[(n >> 12) & 63];
        out[o++] = ALPHABET[(n >> 6) & 63];
        out[o++] = ALPHABET[n & 63];
    }
    if (len - i == 1) {
        uint32_t n = (uint32_t)data[i] << 16;
        out[o++] = ALPHABET[n >> 18];
        out[o++] = ALPHABET[(n >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t n = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        out[o++] = ALPHABET[n >> 18];
        out[o++] = ALPHABET[(n >> 12) & 63];
        out[o++] = ALPHABET[(n >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = 0;
    return out;
}

static int base64_value(uint8_t c) {
    const char *p = c ? strchr(ALPHABET, c) : NULL;
    return p ? (int)(p - ALPHABET) : -1;
}

// Padded standard base64 only; false for anything else. `out` gets a malloc'd buffer.
static bool base64_decode(const uint8_t *text, size_t len, plugin_list_u8_t *out) {
    if (len % 4 != 0) return false;
    size_t padding = 0;
    if (len >= 1 && text[len - 1] == '=') padding++;
    if (len >= 2 && text[len - 2] == '=') padding++;
    out->ptr = malloc(len / 4 * 3 + 1);
    out->len = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t n = 0;
        for (size_t j = 0; j < 4; j++) {
            size_t at = i + j;
            int v = (at >= len - padding) ? 0 : base64_value(text[at]);
            if (v < 0) {
                free(out->ptr);
                return false;
            }
            n = n << 6 | (uint32_t)v;
        }
        uint8_t bytes[3] = {n >> 16, (n >> 8) & 255, n & 255};
        for (size_t k = 0; k < 3; k++) {
            if (out->len < len / 4 * 3 - padding) out->ptr[out->len++] = bytes[k];
        }
    }
    return true;
}

// The first header called `name`, or NULL when it is missing or empty.
static plugin_string_t *header(hookhost_plugin_types_webhook_request_t *request, const char *name) {
    size_t name_len = strlen(name);
    for (size_t i = 0; i < request->headers.len; i++) {
        hookhost_plugin_types_header_t *h = &request->headers.ptr[i];
        if (h->f0.len == name_len && strncasecmp((const char *)h->f0.ptr, name, name_len) == 0) {
            return h->f1.len > 0 ? &h->f1 : NULL;
        }
    }
    return NULL;
}

static bool all_bytes(const plugin_string_t *s, size_t max, const char *allowed) {
    if (s->len < 1 || s->len > max) return false;
    for (size_t i = 0; i < s->len; i++) {
        if (s->ptr[i] == 0 || !strchr(allowed, s->ptr[i])) return false;
    }
    return true;
}

void exports_hookhost_plugin_guest_describe(hookhost_plugin_types_manifest_t *ret) {
    plugin_string_dup(&ret->name, "Standard Webhooks (C)");
    plugin_string_dup(&ret->version, "0.1.0");
    plugin_string_dup(&ret->description, "Standard Webhooks receiver (webhook-signature v1)");
    ret->emits.len = 1;
    ret->emits.ptr = malloc(sizeof(plugin_string_t));
    plugin_string_dup(&ret->emits.ptr[0], "standard.webhook");
    ret->poll_interval_seconds.is_some = false;
    ret->subscriptions.len = 0;
    ret->subscriptions.ptr = NULL;
}

static bool handle(hookhost_plugin_types_webhook_request_t *request,
                   hookhost_plugin_types_webhook_outcome_t *ret, plugin_error_t *err) {
    plugin_string_t key_name, secret;
    plugin_string_set(&key_name, "secret");
    if (!hookhost_plugin_config_get(&key_name, &secret)) {
        return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_INTERNAL, "config `secret` is not set");
    }
    if (secret.len == 0) {
        free(secret.ptr);
        return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_INTERNAL, "config `secret` is not set");
    }
    size_t skip = (secret.len >= 6 && memcmp(secret.ptr, "whsec_", 6) == 0) ? 6 : 0;
    plugin_list_u8_t key;
    bool key_ok = base64_decode(secret.ptr + skip, secret.len - skip, &key);
    free(secret.ptr);
    if (!key_ok) {
        return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_INTERNAL, "config `secret` is not valid base64");
    }

    plugin_string_t *id = header(request, "webhook-id");
    plugin_string_t *timestamp = header(request, "webhook-timestamp");
    plugin_string_t *signatures = header(request, "webhook-signature");
    const char *missing = !id ? "missing webhook-id header"
                          : !timestamp ? "missing webhook-timestamp header"
                          : !signatures ? "missing webhook-signature header"
                                        : NULL;
    if (missing) {
        plugin_list_u8_free(&key);
        return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_UNAUTHORIZED, missing);
    }

    if (!all_bytes(timestamp, 15, "0123456789")) {
        plugin_list_u8_free(&key);
        return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_UNAUTHORIZED, "malformed webhook-timestamp header");
    }
    long long sent = 0;
    for (size_t i = 0; i < timestamp->len; i++) sent = sent * 10 + (timestamp->ptr[i] - '0');
    long long now = (long long)time(NULL);
    if (llabs(now - sent) > TOLERANCE_SECONDS) {
        plugin_list_u8_free(&key);
        return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_UNAUTHORIZED,
                    "webhook-timestamp is outside the 300 s tolerance");
    }

    // "{id}.{timestamp}.{body}"
    plugin_list_u8_t signed_data;
    signed_data.len = id->len + 1 + timestamp->len + 1 + request->body.len;
    signed_data.ptr = malloc(signed_data.len + 1);
    uint8_t *w = signed_data.ptr;
    memcpy(w, id->ptr, id->len);
    w += id->len;
    *w++ = '.';
    memcpy(w, timestamp->ptr, timestamp->len);
    w += timestamp->len;
    *w++ = '.';
    if (request->body.len) memcpy(w, request->body.ptr, request->body.len);
    plugin_list_u8_t mac;
    hookhost_plugin_crypto_hmac_sha256(&key, &signed_data, &mac);
    free(signed_data.ptr);
    plugin_list_u8_free(&key);
    char *mac_b64 = base64_encode(mac.ptr, mac.len);
    plugin_list_u8_free(&mac);
    size_t expected_len = 3 + strlen(mac_b64);
    char *expected = malloc(expected_len + 1);
    snprintf(expected, expected_len + 1, "v1,%s", mac_b64);
    free(mac_b64);

    bool authentic = false;
    plugin_list_u8_t expected_list = {(uint8_t *)expected, expected_len};
    for (size_t start = 0; start < signatures->len;) {
        size_t end = start;
        while (end < signatures->len && signatures->ptr[end] != ' ') end++;
        if (end > start) {
            plugin_list_u8_t entry = {signatures->ptr + start, end - start};
            if (hookhost_plugin_crypto_constant_time_eq(&entry, &expected_list)) authentic = true;
        }
        start = end + 1;
    }
    free(expected);
    if (!authentic) {
        return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_UNAUTHORIZED, "no matching signature");
    }

    if (!all_bytes(id, 255, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")) {
        return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_BAD_REQUEST,
                    "webhook-id must be 1-255 characters of A-Z a-z 0-9 _ . : -");
    }

    const char *reply_format = "{\"ok\":true,\"event\":{\"id\":\"%.*s\",\"kind\":\"standard.webhook\"}}";
    size_t reply_len = (size_t)snprintf(NULL, 0, reply_format, (int)id->len, id->ptr);
    ret->response.status = 200;
    ret->response.headers.len = 1;
    ret->response.headers.ptr = malloc(sizeof(hookhost_plugin_types_header_t));
    plugin_string_dup(&ret->response.headers.ptr[0].f0, "content-type");
    plugin_string_dup(&ret->response.headers.ptr[0].f1, "application/json");
    ret->response.body.ptr = malloc(reply_len + 1);
    snprintf((char *)ret->response.body.ptr, reply_len + 1, reply_format, (int)id->len, id->ptr);
    ret->response.body.len = reply_len;

    char *body_b64 = base64_encode(request->body.ptr, request->body.len);
    size_t payload_len = strlen(body_b64) + strlen("{\"body_base64\":\"\"}");
    char *payload = malloc(payload_len + 1);
    snprintf(payload, payload_len + 1, "{\"body_base64\":\"%s\"}", body_b64);
    free(body_b64);

    ret->events.len = 1;
    ret->events.ptr = malloc(sizeof(hookhost_plugin_types_event_t));
    hookhost_plugin_types_event_t *event = &ret->events.ptr[0];
    plugin_string_dup_n(&event->id, (const char *)id->ptr, id->len);
    plugin_string_dup(&event->kind, "standard.webhook");
    event->subject.is_some = false;
    event->payload.ptr = (uint8_t *)payload;
    event->payload.len = payload_len;
    return true;
}

bool exports_hookhost_plugin_guest_handle_webhook(hookhost_plugin_types_webhook_request_t *request,
                                                  hookhost_plugin_types_webhook_outcome_t *ret,
                                                  plugin_error_t *err) {
    bool ok = handle(request, ret, err);
    hookhost_plugin_types_webhook_request_free(request);
    return ok;
}

bool exports_hookhost_plugin_guest_poll(plugin_string_t *maybe_cursor,
                                        hookhost_plugin_types_poll_outcome_t *ret, plugin_error_t *err) {
    (void)ret;
    if (maybe_cursor) plugin_string_free(maybe_cursor);
    return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_INTERNAL, "standard-c does not poll");
}

bool exports_hookhost_plugin_guest_on_event(hookhost_plugin_types_stored_event_t *event, plugin_error_t *err) {
    hookhost_plugin_types_stored_event_free(event);
    return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_INTERNAL, "standard-c subscribes to no events");
}
