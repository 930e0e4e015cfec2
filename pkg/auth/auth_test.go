package auth_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"hookstream/pkg/auth"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// sign signs claims with an arbitrary method and key, for tokens Mint cannot make.
func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

func claims(ttl time.Duration) *auth.Claims {
	now := time.Now()
	return &auth.Claims{
		Partitions: []string{"p1"},
		Scope:      auth.ScopeStreamsRead,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   "test",
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
}

func TestMintHMACRoundTrip(t *testing.T) {
	key := newKey(t)
	tok, err := auth.Mint(key, []string{"p1", "p2"}, []string{auth.ScopeStreamsRead, auth.ScopeIngestWrite}, time.Hour)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	c, err := auth.HMACVerifier{Key: key}.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !slices.Equal(c.Partitions, []string{"p1", "p2"}) {
		t.Errorf("partitions = %v", c.Partitions)
	}
	if c.Scope != "streams:read ingest:write" {
		t.Errorf("scope = %q", c.Scope)
	}
	if c.Subject != "dev" {
		t.Errorf("subject = %q, want dev", c.Subject)
	}
	if c.ExpiresAt == nil || time.Until(c.ExpiresAt.Time) < 59*time.Minute || time.Until(c.ExpiresAt.Time) > time.Hour+time.Second {
		t.Errorf("exp = %v, want about 1h from now", c.ExpiresAt)
	}
	if err := c.Allow("p2", auth.ScopeIngestWrite); err != nil {
		t.Errorf("Allow(p2, ingest:write) = %v", err)
	}
}

func TestHMACVerifierRejects(t *testing.T) {
	key := newKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := auth.Mint(key, []string{"p1"}, auth.AllScopes, -time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, err := auth.Mint(newKey(t), []string{"p1"}, auth.AllScopes, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	noExp := claims(time.Hour)
	noExp.ExpiresAt = nil

	tests := []struct {
		name  string
		token string
	}{
		{"expired beyond leeway", expired},
		{"signed with another key", wrongKey},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(time.Hour))},
		{"RS256 token (algorithm confusion)", sign(t, jwt.SigningMethodRS256, rsaKey, claims(time.Hour))},
		{"HS512 with the right key", sign(t, jwt.SigningMethodHS512, key, claims(time.Hour))},
		{"no exp claim", sign(t, jwt.SigningMethodHS256, key, noExp)},
		{"garbage", "not.a.jwt"},
		{"empty", ""},
		{"tampered payload", tamper(t, sign(t, jwt.SigningMethodHS256, key, claims(time.Hour)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := auth.HMACVerifier{Key: key}.Verify(tc.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", c)
			}
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("error %v does not wrap ErrUnauthenticated", err)
			}
			if c != nil {
				t.Errorf("claims = %+v, want nil", c)
			}
		})
	}
}

// tamper replaces a token's payload by one granting every partition, keeping the signature.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", tok, len(parts))
	}
	forged := sign(t, jwt.SigningMethodHS256, []byte("attacker"), &auth.Claims{
		Partitions:       []string{"*"},
		Scope:            strings.Join(auth.AllScopes, " "),
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
	})
	return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
}

func TestHMACVerifierLeeway(t *testing.T) {
	key := newKey(t)
	// Expired 5 s ago: within the 30 s clock-skew leeway.
	tok, err := auth.Mint(key, []string{"p1"}, auth.AllScopes, -5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (auth.HMACVerifier{Key: key}).Verify(tok); err != nil {
		t.Errorf("token expired 5s ago rejected: %v", err)
	}
}

func TestClaimsAllow(t *testing.T) {
	tests := []struct {
		name       string
		partitions []string
		scope      string
		partition  string
		want       string // wanted scope
		ok         bool
	}{
		{"listed partition and scope", []string{"p1", "p2"}, "streams:read streams:write", "p2", auth.ScopeStreamsWrite, true},
		{"wildcard partition", []string{"*"}, "ingest:write", "anything", auth.ScopeIngestWrite, true},
		{"other partition", []string{"p1"}, "streams:read", "p2", auth.ScopeStreamsRead, false},
		{"no partitions", nil, "streams:read", "p1", auth.ScopeStreamsRead, false},
		{"missing scope", []string{"p1"}, "streams:read", "p1", auth.ScopeStreamsWrite, false},
		{"empty scope", []string{"*"}, "", "p1", auth.ScopeStreamsRead, false},
		{"scope prefix is not the scope", []string{"p1"}, "streams", "p1", auth.ScopeStreamsRead, false},
		{"scope substring is not the scope", []string{"p1"}, "streams:read:all", "p1", auth.ScopeStreamsRead, false},
		{"scopes separated by several spaces", []string{"p1"}, "  streams:read   ingest:write ", "p1", auth.ScopeIngestWrite, true},
		{"partition match is exact", []string{"p1"}, "streams:read", "P1", auth.ScopeStreamsRead, false},
		{"wildcard is not a prefix glob", []string{"p*"}, "streams:read", "p1", auth.ScopeStreamsRead, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &auth.Claims{Partitions: tc.partitions, Scope: tc.scope}
			err := c.Allow(tc.partition, tc.want)
			if tc.ok && err != nil {
				t.Fatalf("Allow = %v, want nil", err)
			}
			if !tc.ok {
				if err == nil {
					t.Fatal("Allow = nil, want ErrForbidden")
				}
				if !errors.Is(err, auth.ErrForbidden) {
					t.Errorf("error %v does not wrap ErrForbidden", err)
				}
			}
		})
	}
}

// testDevKeyCreateReload: a key created in a new directory (0600) is the key a later load
// reads, with or without create, and verifies tokens minted with it.
func testDevKeyCreateReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	k1, err := auth.LoadDevKey(dir, true)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(k1) != 32 {
		t.Errorf("key length = %d, want 32", len(k1))
	}
	fi, err := os.Stat(filepath.Join(dir, auth.DevKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %o, want 600", perm)
	}
	k2, err := auth.LoadDevKey(dir, false)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if string(k1) != string(k2) {
		t.Error("reloaded key differs from the created one")
	}
	k3, err := auth.LoadDevKey(dir, true)
	if err != nil {
		t.Fatalf("reload with create: %v", err)
	}
	if string(k1) != string(k3) {
		t.Error("LoadDevKey(create=true) replaced an existing key")
	}
	// A token minted with the first load verifies with the second.
	tok, err := auth.Mint(k1, []string{"p1"}, auth.AllScopes, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (auth.HMACVerifier{Key: k2}).Verify(tok); err != nil {
		t.Errorf("verify with reloaded key: %v", err)
	}
}

func TestLoadDevKey(t *testing.T) {
	t.Run("missing without create", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := auth.LoadDevKey(dir, false); err == nil {
			t.Fatal("LoadDevKey(create=false) on an empty dir succeeded")
		}
		if _, err := os.Stat(filepath.Join(dir, auth.DevKeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("key file created without create: %v", err)
		}
	})
	t.Run("create then reload", testDevKeyCreateReload)
	t.Run("two dirs get different keys", func(t *testing.T) {
		a, err := auth.LoadDevKey(t.TempDir(), true)
		if err != nil {
			t.Fatal(err)
		}
		b, err := auth.LoadDevKey(t.TempDir(), true)
		if err != nil {
			t.Fatal(err)
		}
		if string(a) == string(b) {
			t.Error("two fresh keys are equal")
		}
	})
	t.Run("existing hex key with surrounding space", func(t *testing.T) {
		dir := t.TempDir()
		want := newKey(t)
		if err := os.WriteFile(filepath.Join(dir, auth.DevKeyFile), []byte("  "+hex.EncodeToString(want)+"\n\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := auth.LoadDevKey(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("key = %x, want %x", got, want)
		}
	})
	corrupt := []struct {
		name    string
		content string
	}{
		{"not hex", "zz" + strings.Repeat("00", 31)},
		{"too short", hex.EncodeToString(make([]byte, 31))},
		{"empty", ""},
		{"odd length", strings.Repeat("a", 65)},
	}
	for _, tc := range corrupt {
		t.Run("corrupt/"+tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, auth.DevKeyFile)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if k, err := auth.LoadDevKey(dir, true); err == nil {
				t.Fatalf("corrupt key accepted: %x", k)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.content {
				t.Error("LoadDevKey overwrote a corrupt key file")
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   string
		ok     bool
	}{
		{"bearer", "Bearer abc.def.ghi", "abc.def.ghi", true},
		{"scheme is case-insensitive", "bearer abc", "abc", true},
		{"upper-case scheme", "BEARER abc", "abc", true},
		{"extra spaces around token", "Bearer   abc  ", "abc", true},
		{"empty header", "", "", false},
		{"scheme only", "Bearer", "", false},
		{"scheme and blanks", "Bearer    ", "", false},
		{"basic auth", "Basic dXNlcjpwYXNz", "", false},
		{"token without scheme", "abc.def.ghi", "", false},
		{"scheme prefix", "Bearerabc def", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := auth.BearerToken(tc.header)
			if tc.ok {
				if err != nil {
					t.Fatalf("BearerToken(%q) = %v", tc.header, err)
				}
				if got != tc.want {
					t.Errorf("BearerToken(%q) = %q, want %q", tc.header, got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("BearerToken(%q) = %q, want error", tc.header, got)
			}
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("error %v does not wrap ErrUnauthenticated", err)
			}
		})
	}
}

// writePublicPEM writes pub as a PKIX "PUBLIC KEY" PEM file and returns its path.
func writePublicPEM(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type keyPair struct {
	name   string
	method jwt.SigningMethod
	priv   crypto.Signer
}

func keyPairs(t *testing.T) []keyPair {
	t.Helper()
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return []keyPair{
		{"Ed25519", jwt.SigningMethodEdDSA, edPriv},
		{"ECDSA P-256", jwt.SigningMethodES256, ecPriv},
		{"RSA", jwt.SigningMethodRS256, rsaPriv},
	}
}

func TestKeyVerifier(t *testing.T) {
	for _, kp := range keyPairs(t) {
		t.Run(kp.name, func(t *testing.T) {
			pub, err := auth.LoadPublicKey(writePublicPEM(t, kp.priv.Public()))
			if err != nil {
				t.Fatalf("LoadPublicKey: %v", err)
			}
			other := keyPairs(t)
			var otherPriv crypto.Signer
			for _, o := range other {
				if o.name == kp.name {
					otherPriv = o.priv
				}
			}
			mk := func(aud, iss string, ttl time.Duration) *auth.Claims {
				c := claims(ttl)
				c.Partitions = []string{"*"}
				c.Scope = "streams:write"
				c.Issuer = iss
				if aud != "" {
					c.Audience = jwt.ClaimStrings{aud}
				}
				return c
			}
			v := auth.KeyVerifier{Key: pub, Audience: "hookstream", Issuer: "https://idp.example"}
			tests := []struct {
				name  string
				v     auth.KeyVerifier
				token string
				ok    bool
			}{
				{"valid", v, sign(t, kp.method, kp.priv, mk("hookstream", "https://idp.example", time.Hour)), true},
				{"no audience or issuer required", auth.KeyVerifier{Key: pub}, sign(t, kp.method, kp.priv, mk("", "", time.Hour)), true},
				{"wrong audience", v, sign(t, kp.method, kp.priv, mk("other", "https://idp.example", time.Hour)), false},
				{"missing audience", v, sign(t, kp.method, kp.priv, mk("", "https://idp.example", time.Hour)), false},
				{"wrong issuer", v, sign(t, kp.method, kp.priv, mk("hookstream", "https://evil.example", time.Hour)), false},
				{"missing issuer", v, sign(t, kp.method, kp.priv, mk("hookstream", "", time.Hour)), false},
				{"expired", v, sign(t, kp.method, kp.priv, mk("hookstream", "https://idp.example", -time.Hour)), false},
				{"signed by another key", v, sign(t, kp.method, otherPriv, mk("hookstream", "https://idp.example", time.Hour)), false},
				{"alg none", v, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, mk("hookstream", "https://idp.example", time.Hour)), false},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					c, err := tc.v.Verify(tc.token)
					if tc.ok {
						if err != nil {
							t.Fatalf("Verify: %v", err)
						}
						if err := c.Allow("p9", auth.ScopeStreamsWrite); err != nil {
							t.Errorf("claims lost: %v", err)
						}
						return
					}
					if err == nil {
						t.Fatalf("Verify accepted the token: %+v", c)
					}
					if !errors.Is(err, auth.ErrUnauthenticated) {
						t.Errorf("error %v does not wrap ErrUnauthenticated", err)
					}
				})
			}
		})
	}
}

// TestKeyVerifierAlgorithmConfusion: an HS256 token whose HMAC key is the server's public key
// PEM must not verify against an asymmetric KeyVerifier.
func TestKeyVerifierAlgorithmConfusion(t *testing.T) {
	for _, kp := range keyPairs(t) {
		t.Run(kp.name, func(t *testing.T) {
			path := writePublicPEM(t, kp.priv.Public())
			pemBytes, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := auth.LoadPublicKey(path)
			if err != nil {
				t.Fatal(err)
			}
			der, _ := pem.Decode(pemBytes)
			for name, hmacKey := range map[string][]byte{"pem": pemBytes, "der": der.Bytes} {
				tok := sign(t, jwt.SigningMethodHS256, hmacKey, claims(time.Hour))
				if c, err := (auth.KeyVerifier{Key: pub}).Verify(tok); err == nil {
					t.Errorf("HS256 token keyed with the public key (%s) accepted: %+v", name, c)
				}
			}
		})
	}
}

func TestLoadPublicKey(t *testing.T) {
	kps := keyPairs(t)
	for _, kp := range kps {
		t.Run(kp.name, func(t *testing.T) {
			got, err := auth.LoadPublicKey(writePublicPEM(t, kp.priv.Public()))
			if err != nil {
				t.Fatal(err)
			}
			eq, ok := kp.priv.Public().(interface{ Equal(crypto.PublicKey) bool })
			if !ok || !eq.Equal(got) {
				t.Errorf("loaded key %T does not equal the generated one", got)
			}
		})
	}
	bad := []struct {
		name    string
		content []byte
	}{
		{"not PEM", []byte("hello")},
		{"empty", nil},
		{"private key PEM", func() []byte {
			der, err := x509.MarshalPKCS8PrivateKey(kps[0].priv)
			if err != nil {
				t.Fatal(err)
			}
			return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		}()},
		{"PEM with junk", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})},
	}
	for _, tc := range bad {
		t.Run("reject/"+tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if k, err := auth.LoadPublicKey(path); err == nil {
				t.Fatalf("LoadPublicKey accepted %s: %T", tc.name, k)
			}
		})
	}
	t.Run("reject/missing file", func(t *testing.T) {
		_, err := auth.LoadPublicKey(filepath.Join(t.TempDir(), "nope.pem"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want one wrapping os.ErrNotExist", err)
		}
	})
}

// TestLoadDevKeyRace: processes creating the dev key of one directory together all get the
// same key (the replicas of docker-compose.yml share it).
func TestLoadDevKeyRace(t *testing.T) {
	dir := t.TempDir()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := auth.LoadDevKey(dir, true)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i, k := range keys {
		if !bytes.Equal(k, keys[0]) {
			t.Fatalf("process %d got another key", i)
		}
	}
}
