package outbound

import (
	"encoding/base64"
	"net/url"
	"sort"
	"strings"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// Redacted replaces a secret in text that hookstream keeps or shows.
const Redacted = "[REDACTED]"

// minSecret is the shortest string Redact replaces: shorter ones would mangle ordinary text.
const minSecret = 4

// Redact returns s with every occurrence of each secret replaced by Redacted, in the forms a
// secret travels in on the wire: as is, URL-encoded (form bodies, query strings) and
// base64-encoded. Text that came back from a remote party — an endpoint's answer, a token
// endpoint's error — may echo what hookstream sent it; Redact keeps such echoes out of outcomes,
// dead letters, spans and logs. Empty and very short secrets are ignored.
func Redact(s string, secrets ...string) string {
	if s == "" || len(secrets) == 0 {
		return s
	}
	seen := map[string]bool{}
	var forms []string
	for _, sec := range secrets {
		if len(sec) < minSecret {
			continue
		}
		for _, f := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec),
			base64.StdEncoding.EncodeToString([]byte(sec)), base64.RawURLEncoding.EncodeToString([]byte(sec))} {
			if !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	// Longest first: a secret that contains another is replaced whole.
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, Redacted)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// CredentialForms returns the strings to redact for an outbound credential header value:
// the value itself, its token after an auth scheme ("Bearer t", "Basic b64"), and for Basic the
// decoded "user:password" and the password alone.
func CredentialForms(value string) []string {
	out := []string{value}
	scheme, token, ok := strings.Cut(value, " ")
	if !ok {
		return out
	}
	out = append(out, token)
	if strings.EqualFold(scheme, "Basic") {
		if b, err := base64.StdEncoding.DecodeString(token); err == nil {
			out = append(out, string(b))
			if _, pw, ok := strings.Cut(string(b), ":"); ok {
				out = append(out, pw)
			}
		}
	}
	return out
}

// RedactAuth removes from text (an endpoint's answer) the outbound credential of a stream that
// was sent in headers: an endpoint that refuses a credential often echoes it ("invalid token
// …"), and what it answered goes into outcomes, dead letters, spans, logs and API answers.
func RedactAuth(text string, def *stream.Stream, headers map[string]string) string {
	if text == "" || def == nil {
		return text
	}
	var name string
	switch def.AuthType {
	case proto.AuthBasic, proto.AuthOAuth2:
		name = "Authorization"
	case proto.AuthHeader:
		name = def.AuthHeaderName
	default:
		return text
	}
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			text = Redact(text, CredentialForms(v)...)
		}
	}
	return text
}
