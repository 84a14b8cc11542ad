// Package hookhost is the hookhost plugin SDK for Go: what every plugin needs
// besides its provider logic. `scripts/build-plugin go` copies it into the module
// the bindings are generated in, so a plugin imports it as "wit_component/hookhost"
// and assigns its exports from it (exports.go). Signatures are computed and compared
// by the host (`crypto`), never in Go.
//
// Every call runs in a fresh instance, so the Go runtime and every package's
// initialisation (package-level `var x = f()`, `init()`) run again on each call:
// keep them cheap. A package-level `regexp.MustCompile`, for one, compiles its
// expression on every webhook (it tripled the cost of plugins/standard-go).
package hookhost

import (
	"strconv"
	"strings"
	"time"

	"wit_component/hookhost_plugin_config"
	"wit_component/hookhost_plugin_crypto"
	types "wit_component/hookhost_plugin_types"

	wit "go.bytecodealliance.org/pkg/wit/types"
)

// The contract's types a plugin handles.
type (
	Request     = types.WebhookRequest
	Outcome     = types.WebhookOutcome
	Response    = types.HttpResponse
	Event       = types.Event
	Manifest    = types.Manifest
	PollOutcome = types.PollOutcome
	StoredEvent = types.StoredEvent
)

// None is an absent optional string (an event without a subject).
func None() wit.Option[string] { return wit.None[string]() }

// Header is the first value of header name, compared without case, and whether
// there is one.
func Header(request Request, name string) (string, bool) {
	for _, h := range request.Headers {
		if strings.EqualFold(h.F0, name) {
			return h.F1, true
		}
	}
	return "", false
}

// RequiredHeaders are the first values of the named headers, in order; the first
// one missing or empty refuses the call with `unauthorized("missing <name> header")`,
// name as given.
func RequiredHeaders(request Request, names ...string) ([]string, error) {
	values := make([]string, len(names))
	for i, name := range names {
		values[i], _ = Header(request, name)
		if values[i] == "" {
			return nil, Unauthorized("missing " + name + " header")
		}
	}
	return values, nil
}

// RequiredConfig is config key; unset or empty fails the call with
// `internal("config `<key>` is not set")`, since only the operator can fix it.
func RequiredConfig(key string) (string, error) {
	value := hookhost_plugin_config.Get(key).SomeOr("")
	if value == "" {
		return "", Internal("config `" + key + "` is not set")
	}
	return value, nil
}

// Config is config key; "" when it is unset (for a setting that may be left out).
func Config(key string) string {
	return hookhost_plugin_config.Get(key).SomeOr("")
}

// JoinBytes is the parts joined; a single part is returned as it is, not copied.
func JoinBytes(parts ...[]byte) []byte {
	if len(parts) == 1 {
		return parts[0]
	}
	size := 0
	for _, part := range parts {
		size += len(part)
	}
	joined := make([]byte, 0, size)
	for _, part := range parts {
		joined = append(joined, part...)
	}
	return joined
}

// HmacSha256 is the HMAC-SHA256 under key of the parts joined, computed by the host.
func HmacSha256(key []byte, parts ...[]byte) []byte {
	return hookhost_plugin_crypto.HmacSha256(key, JoinBytes(parts...))
}

// SignaturesOfVersion are the values of the entries of signatures (space-separated
// `<version>,<value>`, as Standard Webhooks' `webhook-signature` sends them, several
// during a key rotation) whose version is version, in order. Empty entries, entries
// without a comma and other versions are skipped: a receiver checks each value it
// can and accepts the delivery when any one matches.
func SignaturesOfVersion(signatures, version string) []string {
	var values []string
	for _, entry := range strings.Split(signatures, " ") {
		if value, ok := strings.CutPrefix(entry, version+","); ok {
			values = append(values, value)
		}
	}
	return values
}

// SignatureMatches says whether any candidate equals expected, each compared by
// the host in constant time; empty candidates never match.
func SignatureMatches(candidates []string, expected []byte) bool {
	matched := false
	for _, candidate := range candidates {
		if candidate != "" && hookhost_plugin_crypto.ConstantTimeEq([]byte(candidate), expected) {
			matched = true
		}
	}
	return matched
}

// TimestampAge is how many seconds Unix time text is from now, past or future, and
// whether text is 1-15 ASCII digits at all.
func TimestampAge(text string) (int64, bool) {
	if len(text) < 1 || len(text) > 15 || strings.Trim(text, "0123456789") != "" {
		return 0, false
	}
	sent, _ := strconv.ParseInt(text, 10, 64)
	age := time.Now().Unix() - sent
	if age < 0 {
		age = -age
	}
	return age, true
}

// CheckTimestamp refuses a replay: text, from header name, must be Unix seconds
// within toleranceSeconds of now, else `unauthorized("malformed <name> header")` or
// `unauthorized("<name> is outside the <tolerance> s tolerance")`.
func CheckTimestamp(text, name string, toleranceSeconds int64) error {
	age, ok := TimestampAge(text)
	if !ok {
		return Unauthorized("malformed " + name + " header")
	}
	if age > toleranceSeconds {
		return Unauthorized(name + " is outside the " + strconv.FormatInt(toleranceSeconds, 10) + " s tolerance")
	}
	return nil
}

// JSONResponse is an HTTP response of status with body, JSON text,
// `content-type: application/json`.
func JSONResponse(status uint16, body string) Response {
	return Response{
		Status:  status,
		Headers: []wit.Tuple2[string, string]{{F0: "content-type", F1: "application/json"}},
		Body:    []byte(body),
	}
}
