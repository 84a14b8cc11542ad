// The hookhost plugin SDK for C; hookhost.h says what each function does.

#include "hookhost.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// printf into a malloc'd NUL-terminated buffer; its length into `*len`.
static uint8_t *vformat(size_t *len, const char *format, va_list args) {
    va_list again;
    va_copy(again, args);
    int n = vsnprintf(NULL, 0, format, args);
    *len = n < 0 ? 0 : (size_t)n;
    uint8_t *out = malloc(*len + 1);
    vsnprintf((char *)out, *len + 1, format, again);
    va_end(again);
    return out;
}

// Sets `*err` to `tag` with the message printf writes; returns false.
__attribute__((format(printf, 3, 4)))
static bool fail_with(hookhost_error_t *err, uint8_t tag, const char *format, ...) {
    err->tag = tag;
    va_list args;
    va_start(args, format);
    // Every case of the variant holds a string in the same place.
    err->val.internal.ptr = vformat(&err->val.internal.len, format, args);
    va_end(args);
    return false;
}

bool hookhost_fail(hookhost_error_t *err, uint8_t tag, const char *message) {
    return fail_with(err, tag, "%s", message);
}

const plugin_string_t *hookhost_header(const hookhost_request_t *request, const char *name) {
    size_t name_len = strlen(name);
    for (size_t i = 0; i < request->headers.len; i++) {
        const hookhost_plugin_types_header_t *h = &request->headers.ptr[i];
        if (h->f0.len == name_len && strncasecmp((const char *)h->f0.ptr, name, name_len) == 0) {
            return &h->f1;
        }
    }
    return NULL;
}

const plugin_string_t *hookhost_required_header(const hookhost_request_t *request,
                                                const char *name, hookhost_error_t *err) {
    const plugin_string_t *value = hookhost_header(request, name);
    if (value && value->len > 0) return value;
    fail_with(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_UNAUTHORIZED, "missing %s header", name);
    return NULL;
}

bool hookhost_required_config(const char *key, plugin_string_t *value, hookhost_error_t *err) {
    plugin_string_t key_string;
    plugin_string_set(&key_string, key);
    if (hookhost_plugin_config_get(&key_string, value)) {
        if (value->len > 0) return true;
        plugin_string_free(value);
    }
    return fail_with(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_INTERNAL, "config `%s` is not set", key);
}

bool hookhost_config(const char *key, plugin_string_t *value) {
    plugin_string_t key_string;
    plugin_string_set(&key_string, key);
    if (hookhost_plugin_config_get(&key_string, value)) {
        if (value->len > 0) return true;
        plugin_string_free(value);
    }
    value->ptr = NULL;
    value->len = 0;
    return false;
}

long long hookhost_timestamp_age(const plugin_string_t *text) {
    if (text->len < 1 || text->len > 15) return -1;
    long long sent = 0;
    for (size_t i = 0; i < text->len; i++) {
        if (text->ptr[i] < '0' || text->ptr[i] > '9') return -1;
        sent = sent * 10 + (text->ptr[i] - '0');
    }
    return llabs((long long)time(NULL) - sent);
}

bool hookhost_check_timestamp(const plugin_string_t *text, const char *name,
                              long long tolerance_seconds, hookhost_error_t *err) {
    long long age = hookhost_timestamp_age(text);
    if (age < 0) {
        return fail_with(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_UNAUTHORIZED, "malformed %s header", name);
    }
    if (age > tolerance_seconds) {
        return fail_with(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_UNAUTHORIZED,
                         "%s is outside the %lld s tolerance", name, tolerance_seconds);
    }
    return true;
}

void hookhost_join(const plugin_list_u8_t *parts, size_t count, plugin_list_u8_t *joined) {
    joined->len = 0;
    for (size_t i = 0; i < count; i++) joined->len += parts[i].len;
    joined->ptr = malloc(joined->len + 1);
    uint8_t *at = joined->ptr;
    for (size_t i = 0; i < count; i++) {
        if (parts[i].len) memcpy(at, parts[i].ptr, parts[i].len);
        at += parts[i].len;
    }
}

void hookhost_hmac_sha256(const plugin_list_u8_t *key, const plugin_list_u8_t *parts,
                          size_t count, plugin_list_u8_t *mac) {
    // The host only reads its arguments.
    if (count == 1) {
        hookhost_plugin_crypto_hmac_sha256((plugin_list_u8_t *)key, (plugin_list_u8_t *)parts, mac);
        return;
    }
    plugin_list_u8_t joined;
    hookhost_join(parts, count, &joined);
    hookhost_plugin_crypto_hmac_sha256((plugin_list_u8_t *)key, &joined, mac);
    free(joined.ptr);
}

// 0.2.0's crypto, declared again as weak so that this SDK still builds against 0.1.0,
// whose bindings lack it (there, calling it traps); against 0.2.0 the bindings
// define it and it links as usual.
__attribute__((weak)) bool hookhost_plugin_crypto_ed25519_verify(plugin_list_u8_t *public_key,
                                                                 plugin_list_u8_t *message,
                                                                 plugin_list_u8_t *signature);

bool hookhost_ed25519_verify(const plugin_list_u8_t *public_key, const plugin_list_u8_t *message,
                             const plugin_list_u8_t *signature) {
    // The host only reads its arguments.
    return hookhost_plugin_crypto_ed25519_verify((plugin_list_u8_t *)public_key,
                                                 (plugin_list_u8_t *)message,
                                                 (plugin_list_u8_t *)signature);
}

bool hookhost_ed25519_base64_matches(const plugin_list_u8_t *public_key,
                                     const plugin_list_u8_t *message, const uint8_t *text,
                                     size_t len) {
    plugin_list_u8_t signature;
    if (!hookhost_base64_decode(text, len, &signature)) return false;
    char *again = hookhost_base64_encode(signature.ptr, signature.len);
    bool canonical = strlen(again) == len && memcmp(again, text, len) == 0;
    free(again);
    bool valid = canonical && hookhost_ed25519_verify(public_key, message, &signature);
    free(signature.ptr);
    return valid;
}

bool hookhost_next_signature(const plugin_string_t *list, const char *version, size_t *at,
                             plugin_list_u8_t *value) {
    size_t version_len = strlen(version);
    while (*at < list->len) {
        size_t start = *at, end = start;
        while (end < list->len && list->ptr[end] != ' ') end++;
        *at = end + 1;
        if (end - start > version_len && memcmp(list->ptr + start, version, version_len) == 0 &&
            list->ptr[start + version_len] == ',') {
            value->ptr = list->ptr + start + version_len + 1;
            value->len = end - start - version_len - 1;
            return true;
        }
    }
    return false;
}

bool hookhost_signature_in_list(const plugin_string_t *list, char separator, const char *expected) {
    plugin_list_u8_t want = {(uint8_t *)expected, strlen(expected)};
    bool found = false;
    for (size_t start = 0; start < list->len;) {
        size_t end = start;
        while (end < list->len && list->ptr[end] != (uint8_t)separator) end++;
        if (end > start) {
            plugin_list_u8_t entry = {list->ptr + start, end - start};
            if (hookhost_plugin_crypto_constant_time_eq(&entry, &want)) found = true;
        }
        start = end + 1;
    }
    return found;
}

char *hookhost_base64_encode(const uint8_t *data, size_t len) {
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

bool hookhost_base64_decode(const uint8_t *text, size_t len, plugin_list_u8_t *out) {
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

void hookhost_hex(const uint8_t *bytes, size_t len, char *out) {
    static const char DIGITS[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = DIGITS[bytes[i] >> 4];
        out[2 * i + 1] = DIGITS[bytes[i] & 15];
    }
    out[2 * len] = 0;
}

char *hookhost_format(const char *format, ...) {
    size_t len;
    va_list args;
    va_start(args, format);
    char *out = (char *)vformat(&len, format, args);
    va_end(args);
    return out;
}

void hookhost_string_format(plugin_string_t *out, const char *format, ...) {
    va_list args;
    va_start(args, format);
    out->ptr = vformat(&out->len, format, args);
    va_end(args);
}

void hookhost_manifest(hookhost_manifest_t *ret, const char *name, const char *version,
                       const char *description, const char *emits) {
    plugin_string_dup(&ret->name, name);
    plugin_string_dup(&ret->version, version);
    plugin_string_dup(&ret->description, description);
    ret->emits.len = 1;
    ret->emits.ptr = malloc(sizeof(plugin_string_t));
    plugin_string_dup(&ret->emits.ptr[0], emits);
    ret->poll_interval_seconds.is_some = false;
    ret->subscriptions.len = 0;
    ret->subscriptions.ptr = NULL;
}

void hookhost_json_response(hookhost_response_t *response, uint16_t status, const char *format, ...) {
    response->status = status;
    response->headers.len = 1;
    response->headers.ptr = malloc(sizeof(hookhost_plugin_types_header_t));
    plugin_string_dup(&response->headers.ptr[0].f0, "content-type");
    plugin_string_dup(&response->headers.ptr[0].f1, "application/json");
    va_list args;
    va_start(args, format);
    response->body.ptr = vformat(&response->body.len, format, args);
    va_end(args);
}

hookhost_event_t *hookhost_emit(hookhost_outcome_t *outcome) {
    size_t n = outcome->events.len;
    outcome->events.ptr = realloc(outcome->events.ptr, (n + 1) * sizeof(hookhost_event_t));
    outcome->events.len = n + 1;
    hookhost_event_t *event = &outcome->events.ptr[n];
    memset(event, 0, sizeof *event);
    return event;
}
