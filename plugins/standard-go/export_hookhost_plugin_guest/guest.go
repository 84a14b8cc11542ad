// Package export_hookhost_plugin_guest is the Standard Webhooks receiver, the Go
// one of five identical implementations; ../../STANDARD-WEBHOOKS.md is the
// specification all five follow step by step.
package export_hookhost_plugin_guest

import (
	"encoding/base64"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"wit_component/hookhost_plugin_config"
	"wit_component/hookhost_plugin_crypto"
	types "wit_component/hookhost_plugin_types"

	wit "go.bytecodealliance.org/pkg/wit/types"
)

const toleranceSeconds = 300

var (
	timestampPattern = regexp.MustCompile(`^[0-9]{1,15}$`)
	plainID          = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,255}$`)
)

type outcome = wit.Result[types.WebhookOutcome, types.PluginError]

func Describe() types.Manifest {
	return types.Manifest{
		Name:                "Standard Webhooks (Go)",
		Version:             "0.1.0",
		Description:         "Standard Webhooks receiver (webhook-signature v1)",
		Emits:               []string{"standard.webhook"},
		PollIntervalSeconds: wit.None[uint32](),
		Subscriptions:       []string{},
	}
}

func HandleWebhook(request types.WebhookRequest) outcome {
	// Garbage collection is off during calls (see gc.go); collect on the way out.
	defer runtime.GC()
	fail := func(err types.PluginError) outcome { return wit.Err[types.WebhookOutcome](err) }

	secretOption := hookhost_plugin_config.Get("secret")
	secret := secretOption.SomeOr("")
	if secret == "" {
		return fail(types.MakePluginErrorInternal("config `secret` is not set"))
	}
	key, err := base64.StdEncoding.Strict().DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fail(types.MakePluginErrorInternal("config `secret` is not valid base64"))
	}

	id, timestamp, signatures := "", "", ""
	for _, h := range []struct {
		name  string
		value *string
	}{{"webhook-id", &id}, {"webhook-timestamp", &timestamp}, {"webhook-signature", &signatures}} {
		*h.value = header(request, h.name)
		if *h.value == "" {
			return fail(types.MakePluginErrorUnauthorized("missing " + h.name + " header"))
		}
	}

	if !timestampPattern.MatchString(timestamp) {
		return fail(types.MakePluginErrorUnauthorized("malformed webhook-timestamp header"))
	}
	sent, _ := strconv.ParseInt(timestamp, 10, 64)
	diff := time.Now().Unix() - sent
	if diff > toleranceSeconds || diff < -toleranceSeconds {
		return fail(types.MakePluginErrorUnauthorized("webhook-timestamp is outside the 300 s tolerance"))
	}

	signed := make([]byte, 0, len(id)+len(timestamp)+2+len(request.Body))
	signed = append(signed, id+"."+timestamp+"."...)
	signed = append(signed, request.Body...)
	expected := []byte("v1," + base64.StdEncoding.EncodeToString(hookhost_plugin_crypto.HmacSha256(key, signed)))
	authentic := false
	for _, entry := range strings.Split(signatures, " ") {
		if entry != "" && hookhost_plugin_crypto.ConstantTimeEq([]byte(entry), expected) {
			authentic = true
		}
	}
	if !authentic {
		return fail(types.MakePluginErrorUnauthorized("no matching signature"))
	}

	if !plainID.MatchString(id) {
		return fail(types.MakePluginErrorBadRequest("webhook-id must be 1-255 characters of A-Z a-z 0-9 _ . : -"))
	}
	reply := `{"ok":true,"event":{"id":"` + id + `","kind":"standard.webhook"}}`
	return wit.Ok[types.WebhookOutcome, types.PluginError](types.WebhookOutcome{
		Response: types.HttpResponse{
			Status:  200,
			Headers: []wit.Tuple2[string, string]{{F0: "content-type", F1: "application/json"}},
			Body:    []byte(reply),
		},
		Events: []types.Event{{
			Id:      id,
			Kind:    "standard.webhook",
			Subject: wit.None[string](),
			Payload: `{"body_base64":"` + base64.StdEncoding.EncodeToString(request.Body) + `"}`,
		}},
	})
}

func Poll(cursor wit.Option[string]) wit.Result[types.PollOutcome, types.PluginError] {
	return wit.Err[types.PollOutcome](types.MakePluginErrorInternal("standard-go does not poll"))
}

func OnEvent(event types.StoredEvent) wit.Result[wit.Unit, types.PluginError] {
	return wit.Err[wit.Unit](types.MakePluginErrorInternal("standard-go subscribes to no events"))
}

// The first header called name; empty when it is missing (the host lowercases names).
func header(request types.WebhookRequest, name string) string {
	for _, h := range request.Headers {
		if strings.EqualFold(h.F0, name) {
			return h.F1
		}
	}
	return ""
}
