package signing_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"hookstream/pkg/signing"
)

var body = []byte(`{"changed":1,"createdAt":"2025-12-03T06:09:21.915Z","id":"6360e1ef-18b5-457c-a488-47t4f4b60e29","lastUpdatedAt":"2025-12-03T06:09:28.077Z","qualityOfValue":0,"value":"22"}`)

// verifySeed000 runs seed 000's Python verify_webhook_signature (copied verbatim into testdata).
func verifySeed000(t *testing.T, body []byte, signature, secret string) bool {
	t.Helper()
	f := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(f, body, 0o600); err != nil {
		t.Fatal(err)
	}
	err := exec.Command("python3", filepath.Join("testdata", "verify_seed000.py"), f, signature, secret).Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("python3: %v", err)
	}
	return err == nil
}

// verifySeed004 re-implements seed 004's Ruby NetilionController#process in Go:
//
//	raise AuthenticationFailed if request.headers['X-Hub-Signature-Sha256'].blank?
//	calculated_signature = "sha256=#{OpenSSL::HMAC.hexdigest(OpenSSL::Digest.new('sha256'), ENV['webhook_secret'], request.raw_post)}"
//	raise AuthenticationFailed unless Rack::Utils.secure_compare(calculated_signature, request.headers[…])
//
// The seed's last line reads 'X-Hub-Signature' (the SHA-1 header, a typo in the document: it
// could never equal a sha256= value); like the check's first line, this compares with
// X-Hub-Signature-Sha256. Rack's header lookup is case-insensitive, as is http.Header's.
func verifySeed004(h http.Header, rawPost []byte, secret string) bool {
	got := h.Get("X-Hub-Signature-Sha256")
	if strings.TrimSpace(got) == "" {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(rawPost)
	calculated := "sha256=" + hex.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(calculated), []byte(got))
}

func toHeader(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

func TestHubSHA256SeedVerifiers(t *testing.T) {
	const secret = "webhook-secret-key"
	hdrs, err := signing.Headers(signing.SchemeHubSHA256, [][]byte{[]byte(secret)}, "id", 0, body)
	if err != nil {
		t.Fatal(err)
	}
	h := toHeader(hdrs)
	if h.Get("X-Hub-Signature-256") != h.Get("X-Hub-Signature-Sha256") || !strings.HasPrefix(h.Get("X-Hub-Signature-256"), "sha256=") {
		t.Fatalf("headers %v", hdrs)
	}
	if h.Get("X-Hub-Signature") != "" {
		t.Error("hub-sha256 must not send the SHA-1 header")
	}
	if !verifySeed000(t, body, h.Get("X-Hub-Signature-256"), secret) {
		t.Error("seed 000 Python rejected a valid signature")
	}
	if verifySeed000(t, body, h.Get("X-Hub-Signature-256"), "other-secret") {
		t.Error("seed 000 Python accepted a signature made with another secret")
	}
	if !verifySeed004(h, body, secret) {
		t.Error("seed 004 check rejected a valid signature")
	}
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] = '3'
	if verifySeed004(h, tampered, secret) {
		t.Error("seed 004 check accepted a tampered body")
	}
}

func TestHubSHA1(t *testing.T) {
	hdrs, err := signing.Headers(signing.SchemeHubSHA1, [][]byte{[]byte("s")}, "", 0, body)
	if err != nil {
		t.Fatal(err)
	}
	// Independent value, computed by Python's hmac.
	py := exec.Command("python3", "-c", "import hmac,hashlib,sys; sys.stdout.write('sha1='+hmac.new(b's', sys.stdin.buffer.read(), hashlib.sha1).hexdigest())")
	py.Stdin = strings.NewReader(string(body))
	want, err := py.Output()
	if err != nil {
		t.Fatal(err)
	}
	if hdrs["X-Hub-Signature"] != string(want) {
		t.Errorf("X-Hub-Signature = %q, want %q", hdrs["X-Hub-Signature"], want)
	}
	if !verifySeed000(t, body, hdrs["X-Hub-Signature-256"], "s") {
		t.Error("hub-sha1 must keep the sha256 headers")
	}
}

func TestHubRotationOverlap(t *testing.T) {
	hdrs, err := signing.Headers(signing.SchemeHubSHA256, [][]byte{[]byte("new"), []byte("old")}, "", 0, body)
	if err != nil {
		t.Fatal(err)
	}
	if !verifySeed000(t, body, hdrs["X-Hub-Signature-256"], "new") {
		t.Error("current secret does not verify the main header")
	}
	if !verifySeed004(toHeader(map[string]string{"X-Hub-Signature-Sha256": hdrs["X-Hub-Signature-Sha256-Previous"]}), body, "old") {
		t.Error("previous secret does not verify the -Previous header")
	}
}

func TestStandardWebhooksLibrary(t *testing.T) {
	secret := signing.GenerateStandardSecret()
	old := signing.GenerateStandardSecret()
	now := time.Now().Unix()
	for _, tc := range []struct {
		name string
		keys []string
	}{{"one key", []string{secret}}, {"rotation overlap", []string{secret, old}}} {
		t.Run(tc.name, func(t *testing.T) {
			keys := make([][]byte, len(tc.keys))
			for i, k := range tc.keys {
				keys[i] = []byte(k)
			}
			hdrs, err := signing.Headers(signing.SchemeStandard, keys, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, body)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(strings.Fields(hdrs["webhook-signature"])); n != len(keys) {
				t.Fatalf("%d signatures, want %d: %q", n, len(keys), hdrs["webhook-signature"])
			}
			for _, k := range tc.keys {
				wh, err := standardwebhooks.NewWebhook(k)
				if err != nil {
					t.Fatal(err)
				}
				if err := wh.Verify(body, toHeader(hdrs)); err != nil {
					t.Errorf("reference library rejected: %v", err)
				}
				if err := wh.Verify(append([]byte(" "), body...), toHeader(hdrs)); err == nil {
					t.Error("reference library accepted a tampered body")
				}
			}
		})
	}
	other, _ := standardwebhooks.NewWebhook(signing.GenerateStandardSecret())
	hdrs, _ := signing.Headers(signing.SchemeStandard, [][]byte{[]byte(secret)}, "id", now, body)
	if other.Verify(body, toHeader(hdrs)) == nil {
		t.Error("reference library accepted another secret")
	}
}

// TestStandardWebhooksSpecVector signs the example of the Standard Webhooks specification
// (spec/standard-webhooks.md, "Signature scheme": secret, msg id, timestamp and payload) and
// checks the published signature.
func TestStandardWebhooksSpecVector(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	got, err := signing.StandardSign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature = %s, want the spec's %s", got, want)
	}
}

// TestEd25519 verifies v1a signatures the way the Standard Webhooks spec describes (Ed25519 over
// "{id}.{timestamp}.{body}", base64, with the whpk_ public key); the reference Go library
// implements v1 only.
func TestEd25519(t *testing.T) {
	seed := signing.GenerateEd25519Seed()
	oldSeed := signing.GenerateEd25519Seed()
	hdrs, err := signing.Headers(signing.SchemeStandardEd25519, [][]byte{seed, oldSeed}, "msg_1", 1700000000, body)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(pubStr string, h map[string]string, body []byte) bool {
		pub, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(pubStr, "whpk_"))
		if err != nil {
			t.Fatal(err)
		}
		msg := h["webhook-id"] + "." + h["webhook-timestamp"] + "." + string(body)
		for _, s := range strings.Fields(h["webhook-signature"]) {
			v, sig, _ := strings.Cut(s, ",")
			raw, _ := base64.StdEncoding.DecodeString(sig)
			if v == "v1a" && ed25519.Verify(pub, []byte(msg), raw) {
				return true
			}
		}
		return false
	}
	if !verify(signing.PublicKey(seed), hdrs, body) || !verify(signing.PublicKey(oldSeed), hdrs, body) {
		t.Error("a v1a signature does not verify with its public key")
	}
	if verify(signing.PublicKey(signing.GenerateEd25519Seed()), hdrs, body) {
		t.Error("verified with an unrelated public key")
	}
	if verify(signing.PublicKey(seed), hdrs, append(body, ' ')) {
		t.Error("verified a tampered body")
	}
	if hdrs["webhook-timestamp"] != strconv.Itoa(1700000000) {
		t.Errorf("timestamp %q", hdrs["webhook-timestamp"])
	}
	// A user-given private key round-trips.
	priv := ed25519.NewKeyFromSeed(seed)
	got, err := signing.ParseEd25519Secret("whsk_" + base64.StdEncoding.EncodeToString(priv))
	if err != nil || string(got) != string(seed) {
		t.Errorf("ParseEd25519Secret(64-byte key) = %x, %v", got, err)
	}
}

func TestParseSecrets(t *testing.T) {
	for _, tc := range []struct {
		name, s string
		ok      bool
	}{
		{"generated", signing.GenerateStandardSecret(), true},
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false},
		{"not base64", "whsec_!!!", false},
		{"too short", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 8)), false},
		{"too long", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := signing.ParseStandardSecret(tc.s); (err == nil) != tc.ok {
				t.Errorf("ParseStandardSecret(%q) err = %v, want ok=%v", tc.s, err, tc.ok)
			}
		})
	}
	if _, err := signing.Headers("nope", [][]byte{{1}}, "", 0, nil); err == nil {
		t.Error("unknown scheme accepted")
	}
}
