// The hookhost plugin SDK for C: what every plugin needs besides its provider logic.
// `scripts/build-plugin c` compiles hookhost.c with the plugin and puts this folder on
// the include path, next to the generated bindings (`plugin.h`, wit-bindgen c).
//
// Ownership, as wit-bindgen's C bindings define it: the arguments an export receives
// and what host calls return belong to the plugin and must be freed; everything an
// export returns must be malloc'd, because the generated post-return function frees
// it. The macros below write the exports so that a plugin only fills in results:
//
//     static bool handle(hookhost_request_t *request, hookhost_outcome_t *ret,
//                        hookhost_error_t *err) { ... }
//     HOOKHOST_HANDLE_WEBHOOK(handle)
//     HOOKHOST_DOES_NOT_POLL("acme")
//     HOOKHOST_HANDLES_NO_EVENTS("acme")
//
// Errors: `return hookhost_unauthorized(err, "...");` (and bad_request, unavailable,
// internal) refuses a call with that `plugin-error` case. Signatures are computed and
// compared by the host (`crypto`), never in C.

#ifndef HOOKHOST_SDK_H
#define HOOKHOST_SDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "plugin.h"

typedef hookhost_plugin_types_webhook_request_t hookhost_request_t;
typedef hookhost_plugin_types_webhook_outcome_t hookhost_outcome_t;
typedef hookhost_plugin_types_http_response_t hookhost_response_t;
typedef hookhost_plugin_types_event_t hookhost_event_t;
typedef hookhost_plugin_types_plugin_error_t hookhost_error_t;
typedef hookhost_plugin_types_manifest_t hookhost_manifest_t;

// ---- errors: each sets `*err` to a copy of `message` and returns false ----

bool hookhost_fail(hookhost_error_t *err, uint8_t tag, const char *message);
// Not authentic (HTTP 401).
#define hookhost_unauthorized(err, message) \
    hookhost_fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_UNAUTHORIZED, message)
// Malformed (HTTP 400).
#define hookhost_bad_request(err, message) \
    hookhost_fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_BAD_REQUEST, message)
// Something the plugin depends on is down; the caller should retry (HTTP 503).
#define hookhost_unavailable(err, message) \
    hookhost_fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_UNAVAILABLE, message)
// A bug or a setup mistake in the plugin (HTTP 500).
#define hookhost_internal(err, message) \
    hookhost_fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_INTERNAL, message)

// ---- the request ----

// The first value of header `name`, compared without case; NULL when absent. It
// points into `request`.
const plugin_string_t *hookhost_header(const hookhost_request_t *request, const char *name);

// The first value of header `name`; when it is missing or empty, NULL with `*err`
// set to `unauthorized("missing <name> header")`, `name` as given.
const plugin_string_t *hookhost_required_header(const hookhost_request_t *request,
                                                const char *name, hookhost_error_t *err);

// Config `key` into `*value` (the caller frees it, plugin_string_free); when it is
// unset or empty, false with `*err` set to `internal("config `<key>` is not set")`.
bool hookhost_required_config(const char *key, plugin_string_t *value, hookhost_error_t *err);

// Config `key` into `*value` (the caller frees it, plugin_string_free) and true; when
// it is unset or empty, false and `*value` is left empty (for a setting that may be
// left out).
bool hookhost_config(const char *key, plugin_string_t *value);

// ---- signatures ----

// How many seconds Unix time `text` is from now, past or future; -1 unless it is
// 1-15 ASCII digits.
long long hookhost_timestamp_age(const plugin_string_t *text);

// Refuses a replay: `text`, from header `name`, must be Unix seconds within
// `tolerance_seconds` of now, else false with `*err` set to
// `unauthorized("malformed <name> header")` or
// `unauthorized("<name> is outside the <tolerance> s tolerance")`.
bool hookhost_check_timestamp(const plugin_string_t *text, const char *name,
                              long long tolerance_seconds, hookhost_error_t *err);

// The `count` parts joined into `*joined`, malloc'd (the caller frees it,
// plugin_list_u8_free).
void hookhost_join(const plugin_list_u8_t *parts, size_t count, plugin_list_u8_t *joined);

// HMAC-SHA256 under `key` of the `count` parts joined, computed by the host, into
// `*mac` (32 bytes; the caller frees it, plugin_list_u8_free). One part is passed
// as it is, without a copy.
void hookhost_hmac_sha256(const plugin_list_u8_t *key, const plugin_list_u8_t *parts,
                          size_t count, plugin_list_u8_t *mac);

// Whether `signature` is a valid Ed25519 signature (RFC 8032) of `message` under
// `public_key` (32 bytes), verified strictly by the host: a non-canonical
// signature, a small-order key, or a key or signature of the wrong length is false,
// never an error. Needs hookhost:plugin@0.2.0.
bool hookhost_ed25519_verify(const plugin_list_u8_t *public_key, const plugin_list_u8_t *message,
                             const plugin_list_u8_t *signature);

// Whether `text` (`len` bytes), an Ed25519 signature as Standard Webhooks and others
// send it (standard padded base64), is a valid signature of `message` under
// `public_key`. Only the canonical encoding of the bytes is accepted, so that two
// texts never stand for one signature (and every SDK accepts the same strings).
bool hookhost_ed25519_base64_matches(const plugin_list_u8_t *public_key,
                                     const plugin_list_u8_t *message, const uint8_t *text,
                                     size_t len);

// The values of the entries of `list` (space-separated `<version>,<value>`, as
// Standard Webhooks' `webhook-signature` sends them, several during a key rotation)
// whose version is `version`, one per call: start with `*at = 0`; each call sets
// `*value` (pointing into `list`) to the next one and returns true, or returns false
// when there is none left. Empty entries, entries without a comma and other versions
// are skipped.
bool hookhost_next_signature(const plugin_string_t *list, const char *version, size_t *at,
                             plugin_list_u8_t *value);

// A part for hookhost_hmac_sha256 that borrows a string.
static inline plugin_list_u8_t hookhost_bytes(const plugin_string_t *s) {
    return (plugin_list_u8_t){s->ptr, s->len};
}
static inline plugin_list_u8_t hookhost_text(const char *s) {
    return (plugin_list_u8_t){(uint8_t *)s, strlen(s)};
}

// Whether any of the `separator`-separated entries of `list` equals `expected`, each
// compared by the host in constant time; empty entries never match.
bool hookhost_signature_in_list(const plugin_string_t *list, char separator, const char *expected);

// ---- encodings ----

// Standard padded base64 of `len` bytes; a NUL-terminated malloc'd string.
char *hookhost_base64_encode(const uint8_t *data, size_t len);
// Padded standard base64 only; false for anything else. `out` gets a malloc'd buffer.
bool hookhost_base64_decode(const uint8_t *text, size_t len, plugin_list_u8_t *out);
// Lowercase hex of `len` bytes into `out`, which holds 2 * len + 1 chars.
void hookhost_hex(const uint8_t *bytes, size_t len, char *out);
// printf into a malloc'd NUL-terminated string.
char *hookhost_format(const char *format, ...) __attribute__((format(printf, 1, 2)));

// ---- results ----

// printf into `*out`, malloc'd.
void hookhost_string_format(plugin_string_t *out, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

// The manifest of a plugin that neither polls nor subscribes to events and emits
// the kinds matching the one pattern `emits`.
void hookhost_manifest(hookhost_manifest_t *ret, const char *name, const char *version,
                       const char *description, const char *emits);

// Sets `*response` to `status`, `content-type: application/json`, and the body
// printf writes (the JSON text).
void hookhost_json_response(hookhost_response_t *response, uint16_t status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

// Appends one event to the outcome and returns it, zeroed (no subject): fill in its
// id, kind and payload with malloc'd strings (plugin_string_dup, hookhost_string_format).
hookhost_event_t *hookhost_emit(hookhost_outcome_t *outcome);

// ---- the exports ----

// The `describe` export of a plugin whose manifest is the same on every load:
// hookhost_manifest's, declared once. A plugin that computes its manifest defines
// `exports_hookhost_plugin_guest_describe` itself instead.
#define HOOKHOST_MANIFEST(name, version, description, emits)                             \
    void exports_hookhost_plugin_guest_describe(hookhost_manifest_t *ret) {              \
        hookhost_manifest(ret, name, version, description, emits);                       \
    }

// The `handle-webhook` export, calling `handler` with a zeroed outcome. The request
// is freed after it (so `handler` may point into it), and so is the outcome when the
// handler fails.
#define HOOKHOST_HANDLE_WEBHOOK(handler)                                                  \
    bool exports_hookhost_plugin_guest_handle_webhook(hookhost_request_t *request,       \
                                                      hookhost_outcome_t *ret,           \
                                                      hookhost_error_t *err) {           \
        memset(ret, 0, sizeof *ret);                                                     \
        bool ok = handler(request, ret, err);                                            \
        hookhost_plugin_types_webhook_request_free(request);                             \
        if (!ok) hookhost_plugin_types_webhook_outcome_free(ret);                        \
        return ok;                                                                       \
    }

// The `poll` export of a plugin that does not poll: `internal("<id> does not poll")`.
#define HOOKHOST_DOES_NOT_POLL(id)                                                       \
    bool exports_hookhost_plugin_guest_poll(plugin_string_t *maybe_cursor,               \
                                            hookhost_plugin_types_poll_outcome_t *ret,   \
                                            hookhost_error_t *err) {                     \
        (void)ret;                                                                       \
        if (maybe_cursor) plugin_string_free(maybe_cursor);                              \
        return hookhost_internal(err, id " does not poll");                              \
    }

// The `on-event` export of a plugin that subscribes to nothing:
// `internal("<id> subscribes to no events")`.
#define HOOKHOST_HANDLES_NO_EVENTS(id)                                                   \
    bool exports_hookhost_plugin_guest_on_event(hookhost_plugin_types_stored_event_t *event, \
                                                hookhost_error_t *err) {                 \
        hookhost_plugin_types_stored_event_free(event);                                  \
        return hookhost_internal(err, id " subscribes to no events");                    \
    }

#endif
