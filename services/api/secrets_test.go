package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"hookstream/proto"
)

// TestRotateSecret: a rotation stores the next generation and points the stream at it, shows
// the new secret once, and keeps the previous one signing for the overlap; with no overlap the
// previous one stops at once and is removed.
func TestRotateSecret(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"}, "webhookSecret": "first"})

	before := time.Now()
	at := attrs(t, want(t, a.in("p1", "POST", "/streams/"+id+"/secret", nil), http.StatusOK, "rotate"))
	shown, _ := at["webhookSecret"].(string)
	if shown == "" || shown == "first" {
		t.Fatalf("rotation shows %q", shown)
	}
	d := a.stored("p1", id)
	if d.SecretGen != 1 || d.PrevSecretGen != 0 || d.PrevSecretUntil.Before(before.Add(DefaultOverlap-time.Minute)) ||
		d.PrevSecretUntil.After(time.Now().Add(DefaultOverlap)) {
		t.Errorf("after rotation: gen %d, prev %d until %v", d.SecretGen, d.PrevSecretGen, d.PrevSecretUntil)
	}
	if at["previousSecretExpiresAt"] == nil {
		t.Errorf("the answer does not say when the previous secret expires: %v", at)
	}
	if sec := a.secret(proto.SecretKey("p1", id, 1)); sec == nil || string(sec.Current) != shown {
		t.Errorf("generation 1 = %+v, want the shown secret", sec)
	}
	if sec := a.secret(proto.SecretKey("p1", id, 0)); sec == nil || string(sec.Current) != "first" {
		t.Errorf("generation 0 gone during the overlap: %+v", sec)
	}
	if got := a.in("p1", "GET", "/streams/"+id, nil); strings.Contains(string(got.raw), shown) {
		t.Error("GET shows the rotated secret")
	}

	// A given secret, no overlap: generation 2 alone signs; 0 and 1 are removed.
	rotateWithoutOverlap(t, a, id)
}

// rotateWithoutOverlap rotates stream id, whose generation 1 signs and 0 still overlaps, to the
// given secret "third" without overlap: generation 2 alone signs, 0 and 1 are removed.
func rotateWithoutOverlap(t *testing.T, a *apiTest, id string) {
	at := attrs(t, want(t, a.in("p1", "POST", "/streams/"+id+"/secret", map[string]any{"webhookSecret": "third", "overlapSeconds": 0}),
		http.StatusOK, "rotate without overlap"))
	if at["webhookSecret"] != nil || at["previousSecretExpiresAt"] != nil {
		t.Errorf("rotation to a given secret: %v", at)
	}
	d := a.stored("p1", id)
	if d.SecretGen != 2 || !d.PrevSecretUntil.IsZero() {
		t.Errorf("after rotation without overlap: gen %d, prev until %v", d.SecretGen, d.PrevSecretUntil)
	}
	if sec := a.secret(proto.SecretKey("p1", id, 2)); sec == nil || string(sec.Current) != "third" {
		t.Errorf("generation 2 = %+v", sec)
	}
	for _, gen := range []int{0, 1} {
		if sec := a.secret(proto.SecretKey("p1", id, gen)); sec != nil {
			t.Errorf("generation %d kept after a rotation without overlap", gen)
		}
	}
}

// TestRotateSecretSchemes: a stream without a secret gets its first by rotation; an Ed25519
// stream gets a new public key and keeps the previous one for the overlap.
func TestRotateSecretSchemes(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:9/h"))
	at := attrs(t, want(t, a.in("p1", "POST", "/streams/"+id+"/secret", "{}"), http.StatusOK, "first secret"))
	if at["webhookSecret"] == nil || at["signature"] != proto.SignatureHubSHA256 || at["previousSecretExpiresAt"] != nil {
		t.Errorf("first secret by rotation: %v", at)
	}

	ed := a.createStream("p1", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"},
		"signature": proto.SignatureStandardWebhooksEd25519})
	old := a.stored("p1", ed).PublicKey
	at = attrs(t, want(t, a.in("p1", "POST", "/streams/"+ed+"/secret", map[string]any{"overlapSeconds": 60}), http.StatusOK, "rotate ed25519"))
	if pk, _ := at["publicKey"].(string); pk == old || !strings.HasPrefix(pk, "whpk_") || at["webhookSecret"] != nil {
		t.Errorf("ed25519 rotation: %v", at)
	}
	if d := a.stored("p1", ed); d.PrevPublicKey != old || time.Until(d.PrevSecretUntil) > time.Minute {
		t.Errorf("previous key %q until %v", d.PrevPublicKey, d.PrevSecretUntil)
	}
}

// TestRotateSecretRefusals: a bad rotation names its field and changes nothing.
func TestRotateSecretRefusals(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"},
		"signature": proto.SignatureStandardWebhooks})
	tests := []struct {
		name  string
		body  any
		field string
	}{
		{"negative overlap", map[string]any{"overlapSeconds": -1}, "overlapSeconds"},
		{"overlap over a week", map[string]any{"overlapSeconds": 8 * 24 * 3600}, "overlapSeconds"},
		{"secret not of the scheme", map[string]any{"webhookSecret": "plain"}, "webhookSecret"},
		{"unknown field", map[string]any{"secret": "x"}, "secret"},
		{"not JSON", "{", ""},
	}
	for _, tc := range tests {
		wantError(t, a.in("p1", "POST", "/streams/"+id+"/secret", tc.body), 400, tc.field, tc.name)
	}
	if d := a.stored("p1", id); d.SecretGen != 0 || !d.PrevSecretUntil.IsZero() {
		t.Errorf("refused rotations changed the stream: gen %d", d.SecretGen)
	}
	if sec := a.secret(proto.SecretKey("p1", id, 1)); sec != nil {
		t.Error("a refused rotation stored a secret")
	}
}
