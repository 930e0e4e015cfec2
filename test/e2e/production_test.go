package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// issuer is a token issuer with a JWKS endpoint on loopback, like an identity provider.
type issuer struct {
	*httptest.Server
	key *ecdsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pad := func(b *big.Int) string {
		buf := make([]byte, 32)
		return base64.RawURLEncoding.EncodeToString(b.FillBytes(buf))
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
		"x": pad(key.X), "y": pad(key.Y),
	}}})
	is := &issuer{key: key}
	is.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(is.Close)
	return is
}

func (is *issuer) token(t *testing.T, partition, aud string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"partitions": []string{partition}, "scope": "streams:read streams:write ingest:write",
		"aud": aud, "iss": "https://idp.test", "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(is.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startProduction runs the all-in-one without --dev: tokens from a JWKS, a master key from a
// file, private destinations refused except --allow-cidr 127.0.0.2/32.
func startProduction(t *testing.T, is *issuer) *instance {
	t.Helper()
	data := t.TempDir()
	keyFile := data + "/master.key"
	if err := writeFile(keyFile, base64.StdEncoding.EncodeToString(make32())+"\n"); err != nil {
		t.Fatal(err)
	}
	apiAddr, natsAddr := freeAddr(t), freeAddr(t)
	p := startProc(t, "hookstream", "--data", data, "--http-addr", apiAddr, "--nats-listen", natsAddr,
		"--retry-scale", "0.001", "--jwks-url", is.URL, "--jwt-audience", "hookstream", "--jwt-issuer", "https://idp.test",
		"--master-key-file", keyFile, "--allow-http", "--allow-cidr", "127.0.0.2/32")
	in := &instance{t: t, api: "http://" + apiAddr, nats: "nats://" + natsAddr, data: data, procs: []*proc{p}, tokens: map[string]string{}}
	in.waitReady(in.api)
	return in
}

// TestProductionDefaults: outside --dev, JWKS tokens are required (dev HS256 tokens and wrong
// audiences are 401), internal webhook addresses are 400 in every spelling, an allow-listed one
// is delivered to through the guarded dialer, and no dev key is generated.
func TestProductionDefaults(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	in := startProduction(t, is)
	tok := is.token(t, "A", "hookstream")
	in.tokens["A"] = tok // createStream uses it instead of minting a dev token
	streams := "/streaming/v1/partitions/A/streams?type=point-stream"

	if code, out := in.call("GET", streams, tok, nil); code != 200 {
		t.Fatalf("JWKS token: %d %s", code, out)
	}
	if code, _ := in.call("GET", streams, is.token(t, "A", "other-api"), nil); code != 401 {
		t.Errorf("token for another audience: %d, want 401", code)
	}
	devTok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"partitions": []string{"A"}, "scope": "streams:read", "exp": time.Now().Add(time.Hour).Unix()})
	hs, _ := devTok.SignedString([]byte("any key at all, even the public one"))
	if code, _ := in.call("GET", streams, hs, nil); code != 401 {
		t.Errorf("HS256 token outside --dev: %d, want 401", code)
	}

	loopback := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(loopback.Listener.Addr().String())
	for _, host := range []string{"127.0.0.1", "127.1", "2130706433", "0x7f000001", "0.0.0.0", "[::]", "[::1]",
		"[::ffff:169.254.169.254]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "169.254.169.254", "100.64.0.1",
		"10.0.0.1", "172.16.0.1", "192.168.0.1", "[fc00::1]", "[fe80::1]", "localhost"} {
		body := `{"webhookUrl":"http://` + host + `:` + port + `/hook","pointIds":["p1"]}`
		code, out := in.call("POST", streams, tok, body)
		if code != 400 || !strings.Contains(string(out), `"webhookUrl"`) {
			t.Errorf("webhook on %s: %d %s, want 400 on webhookUrl", host, code, out)
		}
	}
	// The same refusal on update.
	allowed := newReceiverOn(t, "127.0.0.2")
	id := in.createStream("A", map[string]any{"webhookUrl": allowed.URL + "/hook", "pointIds": []string{"p1"}, "webhookSecret": "s3cret-value"})
	if code, out := in.call("PATCH", "/streaming/v1/partitions/A/streams/"+id, tok, `{"webhookUrl":"http://169.254.169.254/latest/meta-data"}`); code != 400 {
		t.Errorf("PATCH to the metadata address: %d %s", code, out)
	}
	if code, out := in.call("POST", "/ingest/v1/partitions/A/points/p1/values", tok, `{"value":7}`); code != 202 {
		t.Fatalf("ingest: %d %s", code, out)
	}
	got := allowed.waitFor(t, 1, 20*time.Second)
	if !strings.HasPrefix(got[0].Header.Get("X-Hub-Signature-256"), "sha256=") {
		t.Errorf("delivery to the allow-listed address is not signed: %v", got[0].Header)
	}
	if len(loopback.requests()) != 0 {
		t.Errorf("the loopback receiver got %d requests", len(loopback.requests()))
	}
	if fileExists(in.data + "/dev-jwt.key") {
		t.Error("a dev token key was generated outside --dev")
	}
}

// newReceiverOn is newReceiver listening on another loopback address.
func newReceiverOn(t *testing.T, host string) *receiver {
	t.Helper()
	rc := newReceiver(t, nil)
	rc.Close()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	rc.Server = httptest.NewUnstartedServer(rc.Config.Handler)
	rc.Listener.Close()
	rc.Listener = ln
	rc.Start()
	t.Cleanup(rc.Close)
	return rc
}
