//go:build hookhost_wit_0_2_0

// What only contract 0.2.0 imports: built when scripts/build-plugin builds against
// hookhost:plugin@0.2.0 (it passes `-tags hookhost_wit_0_2_0`), so the SDK still
// builds for a project on the frozen 0.1.0 contract, whose crypto has no
// ed25519-verify.

package hookhost

import (
	"encoding/base64"

	"wit_component/hookhost_plugin_crypto"
)

// Ed25519Verify says whether signature is a valid Ed25519 signature (RFC 8032) of
// message under publicKey (32 bytes), verified strictly by the host: a
// non-canonical signature, a small-order key, or a key or signature of the wrong
// length is false, never an error.
func Ed25519Verify(publicKey, message, signature []byte) bool {
	return hookhost_plugin_crypto.Ed25519Verify(publicKey, message, signature)
}

// Ed25519Base64Matches says whether signatureBase64, an Ed25519 signature as
// Standard Webhooks and others send it (standard padded base64), is a valid
// signature of message under publicKey. Only the canonical encoding of the bytes
// is accepted (strict decoding), so that two texts never stand for one signature
// (and every SDK accepts the same strings).
func Ed25519Base64Matches(publicKey, message []byte, signatureBase64 string) bool {
	signature, err := base64.StdEncoding.Strict().DecodeString(signatureBase64)
	return err == nil && Ed25519Verify(publicKey, message, signature)
}
