// hookhost plugin `{{id}}`: accepts every delivery and emits one `{{id}}.received`
// event keyed by the SHA-256 of the body. Replace handle_webhook with your
// provider's logic: verify its signature with hookhost_plugin_crypto_hmac_sha256 and
// hookhost_plugin_crypto_constant_time_eq, read secrets with hookhost_plugin_config_get.
//
// Ownership (wit-bindgen's C bindings): free the arguments you receive and what host
// calls return; malloc everything you return (plugin_string_dup), since the
// generated post-return function frees it.

#include <stdio.h>
#include <stdlib.h>

#include "plugin.h"

typedef hookhost_plugin_types_plugin_error_t plugin_error_t;

static bool fail(plugin_error_t *err, uint8_t tag, const char *message) {
    err->tag = tag;
    plugin_string_dup(&err->val.internal, message);
    return false;
}

void exports_hookhost_plugin_guest_describe(hookhost_plugin_types_manifest_t *ret) {
    plugin_string_dup(&ret->name, "{{id}}");
    plugin_string_dup(&ret->version, "0.1.0");
    plugin_string_dup(&ret->description, "TODO: what this plugin does");
    ret->emits.len = 1;
    ret->emits.ptr = malloc(sizeof(plugin_string_t));
    plugin_string_dup(&ret->emits.ptr[0], "{{id}}.*");
    ret->poll_interval_seconds.is_some = false;
    ret->subscriptions.len = 0;
    ret->subscriptions.ptr = NULL;
}

bool exports_hookhost_plugin_guest_handle_webhook(hookhost_plugin_types_webhook_request_t *request,
                                                  hookhost_plugin_types_webhook_outcome_t *ret,
                                                  plugin_error_t *err) {
    (void)err;
    plugin_list_u8_t digest;
    hookhost_plugin_crypto_sha256(&request->body, &digest);
    char id[65];
    for (size_t i = 0; i < digest.len && i < 32; i++) snprintf(id + 2 * i, 3, "%02x", digest.ptr[i]);
    plugin_list_u8_free(&digest);
    char payload[64];
    snprintf(payload, sizeof payload, "{\"size\":%zu}", request->body.len);

    ret->response.status = 200;
    ret->response.headers.len = 1;
    ret->response.headers.ptr = malloc(sizeof(hookhost_plugin_types_header_t));
    plugin_string_dup(&ret->response.headers.ptr[0].f0, "content-type");
    plugin_string_dup(&ret->response.headers.ptr[0].f1, "application/json");
    plugin_string_t reply;
    plugin_string_dup(&reply, "{\"ok\":true}");
    ret->response.body.ptr = reply.ptr;
    ret->response.body.len = reply.len;
    ret->events.len = 1;
    ret->events.ptr = malloc(sizeof(hookhost_plugin_types_event_t));
    plugin_string_dup(&ret->events.ptr[0].id, id);
    plugin_string_dup(&ret->events.ptr[0].kind, "{{id}}.received");
    ret->events.ptr[0].subject.is_some = false;
    plugin_string_dup(&ret->events.ptr[0].payload, payload);
    hookhost_plugin_types_webhook_request_free(request);
    return true;
}

bool exports_hookhost_plugin_guest_poll(plugin_string_t *maybe_cursor,
                                        hookhost_plugin_types_poll_outcome_t *ret, plugin_error_t *err) {
    (void)ret;
    if (maybe_cursor) plugin_string_free(maybe_cursor);
    return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_INTERNAL, "{{id}} does not poll");
}

bool exports_hookhost_plugin_guest_on_event(hookhost_plugin_types_stored_event_t *event, plugin_error_t *err) {
    hookhost_plugin_types_stored_event_free(event);
    return fail(err, HOOKHOST_PLUGIN_TYPES_PLUGIN_ERROR_INTERNAL, "{{id}} subscribes to no events");
}
