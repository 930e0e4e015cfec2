package signing_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"hookstream/pkg/signing"
)

func TestHubSHA256(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		body   string
		want   string // verified once with python3's hmac module
	}{
		{
			name:   "README seed 000 delivery",
			secret: "webhook-secret-key",
			body:   `{"changed":1,"createdAt":"2026-11-23T16:59:37.032Z","id":"88d45219-a0cf-4509-8f3d-84d15e6a9c44","lastUpdatedAt":"2026-11-23T16:59:37.032Z","qualityOfValue":0,"value":"22"}`,
			want:   "sha256=7ca2869ba67525791108a731f67fb3abaff8f9c0e0eaf8fd42ea7effe6c73f87",
		},
		{
			name:   "RFC 4231 test case 2",
			secret: "Jefe",
			body:   "what do ya want for nothing?",
			want:   "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		},
		{
			name: "empty secret and body",
			want: "sha256=b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := signing.HubSHA256([]byte(tc.secret), []byte(tc.body))
			if got != tc.want {
				t.Errorf("HubSHA256 = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestHubSHA256MatchesHMAC checks the format against crypto/hmac for inputs the vectors above do
// not cover (binary secrets, large bodies), and that each input changes the signature.
func TestHubSHA256MatchesHMAC(t *testing.T) {
	tests := []struct {
		name         string
		secret, body []byte
	}{
		{"binary secret", []byte{0, 1, 2, 0xff}, []byte("x")},
		{"secret longer than a block", []byte(strings.Repeat("k", 200)), []byte("body")},
		{"1 MiB body", []byte("s"), []byte(strings.Repeat("a", 1<<20))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := hmac.New(sha256.New, tc.secret)
			m.Write(tc.body)
			want := "sha256=" + hex.EncodeToString(m.Sum(nil))
			got := signing.HubSHA256(tc.secret, tc.body)
			if got != want {
				t.Errorf("HubSHA256 = %s, want %s", got, want)
			}
			if other := signing.HubSHA256(append([]byte{}, append(tc.secret, 'x')...), tc.body); other == got {
				t.Error("a different secret gives the same signature")
			}
			if other := signing.HubSHA256(tc.secret, append(append([]byte{}, tc.body...), ' ')); other == got {
				t.Error("a different body gives the same signature")
			}
		})
	}
}

func TestHeaderNames(t *testing.T) {
	if signing.HeaderHubSHA256 != "X-Hub-Signature-256" {
		t.Errorf("HeaderHubSHA256 = %q", signing.HeaderHubSHA256)
	}
	if signing.HeaderHubSHA256Alt != "X-Hub-Signature-Sha256" {
		t.Errorf("HeaderHubSHA256Alt = %q", signing.HeaderHubSHA256Alt)
	}
}
