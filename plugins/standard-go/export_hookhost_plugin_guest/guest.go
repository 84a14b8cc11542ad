// Package export_hookhost_plugin_guest is the Standard Webhooks receiver, the Go
// one of five identical implementations; ../../STANDARD-WEBHOOKS.md is the
// specification all five follow step by step.
package export_hookhost_plugin_guest

import (
	"encoding/base64"
	"strings"

	"wit_component/hookhost"
)

const toleranceSeconds = 300

// isPlainID says whether id is 1-255 characters of A-Z a-z 0-9 _ . : -. A loop
// rather than a package-level regexp: package initialisation runs again in every
// fresh instance, so a regexp compiled there is compiled on every call.
func isPlainID(id string) bool {
	if len(id) == 0 || len(id) > 255 {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '_' || c == '.' || c == ':' || c == '-':
		default:
			return false
		}
	}
	return true
}

var (
	Describe = hookhost.Describes(hookhost.WebhookManifest("Standard Webhooks (Go)", "0.1.0",
		"Standard Webhooks receiver (webhook-signature v1 and v1a)", "standard.webhook"))
	HandleWebhook = hookhost.WebhookExport(handle)
	Poll          = hookhost.DoesNotPoll("standard-go")
	OnEvent       = hookhost.HandlesNoEvents("standard-go")
)

func handle(request hookhost.Request) (hookhost.Outcome, error) {
	secret, publicKey := hookhost.Config("secret"), hookhost.Config("public_key")
	if secret == "" && publicKey == "" {
		return hookhost.Outcome{}, hookhost.Internal("config `secret` or `public_key` must be set")
	}
	var key, verifyKey []byte
	if secret != "" {
		var err error
		key, err = base64.StdEncoding.Strict().DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil {
			return hookhost.Outcome{}, hookhost.Internal("config `secret` is not valid base64")
		}
	}
	if publicKey != "" {
		var err error
		verifyKey, err = base64.StdEncoding.Strict().DecodeString(strings.TrimPrefix(publicKey, "whpk_"))
		if err != nil || len(verifyKey) != 32 {
			return hookhost.Outcome{}, hookhost.Internal("config `public_key` is not the base64 of a 32-byte Ed25519 key")
		}
	}

	headers, err := hookhost.RequiredHeaders(request, "webhook-id", "webhook-timestamp", "webhook-signature")
	if err != nil {
		return hookhost.Outcome{}, err
	}
	id, timestamp, signatures := headers[0], headers[1], headers[2]
	if err := hookhost.CheckTimestamp(timestamp, "webhook-timestamp", toleranceSeconds); err != nil {
		return hookhost.Outcome{}, err
	}

	signed := hookhost.JoinBytes([]byte(id+"."+timestamp+"."), request.Body)
	authentic := false
	if secret != "" {
		expected := []byte("v1," + base64.StdEncoding.EncodeToString(hookhost.HmacSha256(key, signed)))
		authentic = hookhost.SignatureMatches(strings.Split(signatures, " "), expected)
	}
	if publicKey != "" && !authentic {
		for _, value := range hookhost.SignaturesOfVersion(signatures, "v1a") {
			if hookhost.Ed25519Base64Matches(verifyKey, signed, value) {
				authentic = true
				break
			}
		}
	}
	if !authentic {
		return hookhost.Outcome{}, hookhost.Unauthorized("no matching signature")
	}

	if !isPlainID(id) {
		return hookhost.Outcome{}, hookhost.BadRequest("webhook-id must be 1-255 characters of A-Z a-z 0-9 _ . : -")
	}
	return hookhost.Outcome{
		Response: hookhost.JSONResponse(200, `{"ok":true,"event":{"id":"`+id+`","kind":"standard.webhook"}}`),
		Events: []hookhost.Event{{
			Id:      id,
			Kind:    "standard.webhook",
			Subject: hookhost.None(),
			Payload: `{"body_base64":"` + base64.StdEncoding.EncodeToString(request.Body) + `"}`,
		}},
	}, nil
}
