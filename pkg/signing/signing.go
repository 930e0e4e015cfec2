// Package signing computes webhook signature headers. It is used by the signer only, the one
// service that holds secrets.
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Header names of the hub-sha256 scheme. Seed 000 reads the first, seed 004 the second.
const (
	HeaderHubSHA256    = "X-Hub-Signature-256"
	HeaderHubSHA256Alt = "X-Hub-Signature-Sha256"
)

// HubSHA256 returns "sha256=<hex HMAC-SHA256(secret, body)>".
func HubSHA256(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
