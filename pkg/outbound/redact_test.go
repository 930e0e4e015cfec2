package outbound_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"hookstream/pkg/outbound"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

func TestRedact(t *testing.T) {
	const secret = "s3cret/+Key=x"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+secret))
	cases := []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{"raw", "denied: " + secret + "!", []string{secret}, "denied: [REDACTED]!"},
		{"form-encoded", "client_id=c&client_secret=s3cret%2F%2BKey%3Dx&grant_type=x", []string{secret}, "client_id=c&client_secret=[REDACTED]&grant_type=x"},
		{"base64", "got " + base64.StdEncoding.EncodeToString([]byte(secret)), []string{secret}, "got [REDACTED]"},
		{"basic header echoed", "Authorization: [" + basic + "]", outbound.CredentialForms(basic), "Authorization: [[REDACTED]]"},
		{"basic decoded echoed", "you sent user:" + secret, outbound.CredentialForms(basic), "you sent [REDACTED]"},
		{"basic password echoed", "password " + secret + " is wrong", outbound.CredentialForms(basic), "password [REDACTED] is wrong"},
		{"bearer token echoed", "token tok-123456 expired", outbound.CredentialForms("Bearer tok-123456"), "token [REDACTED] expired"},
		{"short secrets ignored", "a b c", []string{"a", ""}, "a b c"},
		{"nothing to redact", "Unauthorized", []string{secret}, "Unauthorized"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := outbound.Redact(c.in, c.secrets...)
			if got != c.want {
				t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
			}
			if strings.Contains(got, secret) {
				t.Errorf("the secret survived: %q", got)
			}
		})
	}
}

func TestRedactAuth(t *testing.T) {
	headers := map[string]string{"X-Api-Key": "k3y-value-123", "Authorization": "Bearer tok-abcdef", "X-Hub-Signature-256": "sha256=00ff"}
	cases := []struct {
		name string
		def  *stream.Stream
		in   string
		want string
	}{
		{"header auth", &stream.Stream{AuthType: proto.AuthHeader, AuthHeaderName: "x-api-key"}, "bad key k3y-value-123", "bad key [REDACTED]"},
		{"oauth2 bearer", &stream.Stream{AuthType: proto.AuthOAuth2}, "token tok-abcdef revoked", "token [REDACTED] revoked"},
		{"no auth keeps the answer", &stream.Stream{}, "bad key k3y-value-123", "bad key k3y-value-123"},
		{"signatures are not credentials", &stream.Stream{AuthType: proto.AuthHeader, AuthHeaderName: "X-Api-Key"}, "got sha256=00ff", "got sha256=00ff"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := outbound.RedactAuth(c.in, c.def, headers); got != c.want {
				t.Errorf("RedactAuth(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}
