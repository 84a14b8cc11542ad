// Package export_hookhost_plugin_guest is hookhost plugin `{{id}}`: it accepts every
// delivery and emits one `{{id}}.received` event keyed by the SHA-256 of the body.
// Replace handle with your provider's logic: read secrets with
// hookhost.RequiredConfig, headers with hookhost.RequiredHeaders, verify the
// signature with hookhost.HmacSha256 and hookhost.SignatureMatches (the host
// computes and compares), refuse with `return hookhost.Outcome{},
// hookhost.Unauthorized("...")`. The SDK, package wit_component/hookhost
// ({{repo}}/plugins/sdk/go), and the bindings packages are put next to this
// folder by the build.
package export_hookhost_plugin_guest

import (
	"encoding/hex"
	"strconv"

	"wit_component/hookhost"
	"wit_component/hookhost_plugin_crypto"
)

var (
	Describe      = hookhost.Describes(hookhost.WebhookManifest("{{id}}", "0.1.0", "TODO: what this plugin does", "{{id}}.*"))
	HandleWebhook = hookhost.WebhookExport(handle)
	Poll          = hookhost.DoesNotPoll("{{id}}")
	OnEvent       = hookhost.HandlesNoEvents("{{id}}")
)

func handle(request hookhost.Request) (hookhost.Outcome, error) {
	return hookhost.Outcome{
		Response: hookhost.JSONResponse(200, `{"ok":true}`),
		Events: []hookhost.Event{{
			Id:      hex.EncodeToString(hookhost_plugin_crypto.Sha256(request.Body)),
			Kind:    "{{id}}.received",
			Subject: hookhost.None(),
			Payload: `{"size":` + strconv.Itoa(len(request.Body)) + `}`,
		}},
	}, nil
}
