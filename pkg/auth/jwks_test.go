package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"hookstream/pkg/auth"
)

// jwksServer serves a JWK Set that a test can add keys to, counting fetches.
type jwksServer struct {
	*httptest.Server
	mu    sync.Mutex
	keys  []jwkset.JWKMarshal
	hits  atomic.Int64
	fails atomic.Bool
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) add(t *testing.T, kid string, alg jwkset.ALG, pub crypto.PublicKey) {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.keys = append(s.keys, j.Marshal())
	s.mu.Unlock()
}

type keys struct {
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	ed       ed25519.PrivateKey
	otherEC  *ecdsa.PrivateKey
	rsa2     *rsa.PrivateKey
	rsaPEM   []byte // the RSA public key as PEM, what an attacker can read
	rsaPEMv2 []byte
}

func genKeys(t *testing.T) keys {
	t.Helper()
	var k keys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	k.ec, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k.otherEC, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, k.ed, _ = ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	k.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	k.rsaPEMv2 = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	return k
}

const (
	testAud = "hookstream-api"
	testIss = "https://issuer.example"
)

func jwksClaims(mod func(*auth.Claims)) *auth.Claims {
	now := time.Now()
	c := &auth.Claims{
		Partitions: []string{"p1"},
		Scope:      "streams:read ingest:write",
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: testIss, Audience: jwt.ClaimStrings{testAud}, Subject: "svc",
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func jwksSign(t *testing.T, m jwt.SigningMethod, kid string, key any, c *auth.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// TestJWKSVerifierMatrix: the verifier accepts the three asymmetric algorithms from the key set
// and rejects every forgery and every token whose claims fail.
func TestJWKSVerifierMatrix(t *testing.T) {
	k := genKeys(t)
	srv := newJWKSServer(t)
	srv.add(t, "rsa1", jwkset.AlgRS256, &k.rsa.PublicKey)
	srv.add(t, "ec1", jwkset.AlgES256, &k.ec.PublicKey)
	srv.add(t, "ed1", jwkset.AlgEdDSA, k.ed.Public())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := auth.NewJWKSVerifier(ctx, auth.JWKSConfig{
		URL: srv.URL, Audience: testAud, Issuer: testIss, UnknownKIDInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	none := func(c *auth.Claims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"RS256", jwksSign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, jwksClaims(nil)), true},
		{"ES256", jwksSign(t, jwt.SigningMethodES256, "ec1", k.ec, jwksClaims(nil)), true},
		{"EdDSA", jwksSign(t, jwt.SigningMethodEdDSA, "ed1", k.ed, jwksClaims(nil)), true},
		{"RS256 without kid", jwksSign(t, jwt.SigningMethodRS256, "", k.rsa, jwksClaims(nil)), true},
		{"alg none", none(jwksClaims(nil)), false},
		{"alg none with kid", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwksClaims(nil))
			tok.Header["kid"] = "rsa1"
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(), false},
		{"HS256 with the RSA public key PEM", jwksSign(t, jwt.SigningMethodHS256, "rsa1", k.rsaPEM, jwksClaims(nil)), false},
		{"HS256 with the PKCS1 PEM, no kid", jwksSign(t, jwt.SigningMethodHS256, "", k.rsaPEMv2, jwksClaims(nil)), false},
		{"wrong alg: RS384 by the RSA key", jwksSign(t, jwt.SigningMethodRS384, "rsa1", k.rsa, jwksClaims(nil)), false},
		{"wrong alg: PS256 by the RSA key", jwksSign(t, jwt.SigningMethodPS256, "rsa1", k.rsa, jwksClaims(nil)), false},
		{"wrong alg: ES256 token naming the RSA kid", jwksSign(t, jwt.SigningMethodES256, "rsa1", k.ec, jwksClaims(nil)), false},
		{"signed by a key not in the set", jwksSign(t, jwt.SigningMethodES256, "ec1", k.otherEC, jwksClaims(nil)), false},
		{"expired", jwksSign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, jwksClaims(func(c *auth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
		})), false},
		{"no exp", jwksSign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, jwksClaims(func(c *auth.Claims) { c.ExpiresAt = nil })), false},
		{"not yet valid", jwksSign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, jwksClaims(func(c *auth.Claims) {
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
		})), false},
		{"wrong audience", jwksSign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, jwksClaims(func(c *auth.Claims) {
			c.Audience = jwt.ClaimStrings{"someone-else"}
		})), false},
		{"no audience", jwksSign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, jwksClaims(func(c *auth.Claims) { c.Audience = nil })), false},
		{"wrong issuer", jwksSign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, jwksClaims(func(c *auth.Claims) {
			c.Issuer = "https://evil.example"
		})), false},
		{"garbage", "not.a.token", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token)
			if tc.ok {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if len(c.Partitions) != 1 || c.Partitions[0] != "p1" {
					t.Errorf("claims = %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify accepted it")
			}
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("error %v does not wrap ErrUnauthenticated (401)", err)
			}
		})
	}

	// A valid token still needs its scope and partition: 403, not 401.
	c, err := v.Verify(jwksSign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, jwksClaims(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Allow("p1", auth.ScopeStreamsWrite); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("missing scope: %v, want ErrForbidden", err)
	}
	if err := c.Allow("p2", auth.ScopeStreamsRead); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("other partition: %v, want ErrForbidden", err)
	}
	if err := c.Allow("p1", auth.ScopeStreamsRead); err != nil {
		t.Errorf("granted scope refused: %v", err)
	}
}

// TestJWKSRefreshAndUnknownKIDFlood: a key added to the set is found by a refetch on its first
// use; a flood of tokens with made-up kids after that costs no fetch at all.
func TestJWKSRefreshAndUnknownKIDFlood(t *testing.T) {
	k := genKeys(t)
	srv := newJWKSServer(t)
	srv.add(t, "rsa1", jwkset.AlgRS256, &k.rsa.PublicKey)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := auth.NewJWKSVerifier(ctx, auth.JWKSConfig{URL: srv.URL, UnknownKIDInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("fetches after start = %d, want 1", n)
	}
	if _, err := v.Verify(jwksSign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, jwksClaims(nil))); err != nil {
		t.Fatal(err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("a known kid caused a fetch: %d", n)
	}
	// Rotation at the issuer: rsa2 appears.
	srv.add(t, "rsa2", jwkset.AlgRS256, &k.rsa2.PublicKey)
	if _, err := v.Verify(jwksSign(t, jwt.SigningMethodRS256, "rsa2", k.rsa2, jwksClaims(nil))); err != nil {
		t.Fatalf("new kid after rotation: %v", err)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("fetches after the new kid = %d, want 2", n)
	}
	for i := range 50 {
		tok := jwksSign(t, jwt.SigningMethodRS256, fmt.Sprintf("made-up-%d", i), k.rsa2, jwksClaims(nil))
		if _, err := v.Verify(tok); err == nil {
			t.Fatal("token with an unknown kid accepted")
		}
	}
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("fetches after 50 unknown kids = %d, want still 2 (rate-limited)", n)
	}
}

// TestStaticKeyVerifierRejectsConfusion: the static-key verifier has the same defences.
func TestStaticKeyVerifierRejectsConfusion(t *testing.T) {
	k := genKeys(t)
	v := auth.KeyVerifier{Key: &k.rsa.PublicKey, Audience: testAud, Issuer: testIss}
	if _, err := v.Verify(jwksSign(t, jwt.SigningMethodRS256, "", k.rsa, jwksClaims(nil))); err != nil {
		t.Fatalf("valid RS256: %v", err)
	}
	for name, tok := range map[string]string{
		"HS256 with the public key PEM": jwksSign(t, jwt.SigningMethodHS256, "", k.rsaPEM, jwksClaims(nil)),
		"EdDSA by another key":          jwksSign(t, jwt.SigningMethodEdDSA, "", k.ed, jwksClaims(nil)),
		"wrong issuer":                  jwksSign(t, jwt.SigningMethodRS256, "", k.rsa, jwksClaims(func(c *auth.Claims) { c.Issuer = "x" })),
	} {
		if _, err := v.Verify(tok); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		}
	}
}
