// Package auth verifies the bearer JWTs of the management and ingest APIs and mints development
// tokens. A token names the partitions it may touch ("*" for operators) and its scopes.
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Scopes.
const (
	ScopeStreamsRead      = "streams:read"
	ScopeStreamsWrite     = "streams:write"
	ScopeIngestWrite      = "ingest:write"
	ScopeDeadLettersWrite = "deadletters:write"
	// ScopeQuotasWrite sets partitions' quotas; it is honoured only in operator tokens
	// (partitions "*") and is not among AllScopes.
	ScopeQuotasWrite = "quotas:write"
)

// AllScopes is what a development token gets by default.
var AllScopes = []string{ScopeStreamsRead, ScopeStreamsWrite, ScopeIngestWrite, ScopeDeadLettersWrite}

// Errors. ErrUnauthenticated maps to 401, ErrForbidden to 403.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Claims are hookstream's JWT claims.
type Claims struct {
	Partitions []string `json:"partitions"`
	// Scope is a space-separated list, as in OAuth 2.
	Scope string `json:"scope"`
	jwt.RegisteredClaims
}

// Allow reports whether the claims grant scope on partition, wrapping ErrForbidden otherwise.
func (c *Claims) Allow(partition, scope string) error {
	if !slices.Contains(c.Partitions, "*") && !slices.Contains(c.Partitions, partition) {
		return fmt.Errorf("%w: token is not valid for partition %q", ErrForbidden, partition)
	}
	if !slices.Contains(strings.Fields(c.Scope), scope) {
		return fmt.Errorf("%w: token lacks scope %q", ErrForbidden, scope)
	}
	return nil
}

// Verifier checks a bearer token and returns its claims. Implementations are safe for concurrent
// use.
type Verifier interface {
	Verify(token string) (*Claims, error)
}

// HMACVerifier verifies HS256 tokens with a shared key. It exists for --dev only.
type HMACVerifier struct {
	Key []byte
}

// Verify implements Verifier.
func (v HMACVerifier) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.Key, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return &c, nil
}

// Mint signs an HS256 token for development.
func Mint(key []byte, partitions, scopes []string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := Claims{
		Partitions: partitions,
		Scope:      strings.Join(scopes, " "),
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   "dev",
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
}

// DevKeyFile is where the development signing key lives inside a data directory.
const DevKeyFile = "dev-jwt.key"

// LoadDevKey reads the development key of a data directory, creating it (32 random bytes, mode
// 0600) when create is set and it does not exist.
func LoadDevKey(dataDir string, create bool) ([]byte, error) {
	path := filepath.Join(dataDir, DevKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("dev key %s is corrupt", path)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) || !create {
		return nil, fmt.Errorf("read dev key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	// Write a temporary file and link it into place: processes sharing the directory (the
	// replicas of docker-compose.yml) that start together agree on the first key linked.
	f, err := os.CreateTemp(dataDir, ".dev-jwt-*")
	if err != nil {
		return nil, fmt.Errorf("write dev key: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("write dev key: %w", werr)
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadDevKey(dataDir, false)
		}
		return nil, fmt.Errorf("write dev key: %w", err)
	}
	return key, nil
}

// BearerToken extracts the token of an "Authorization: Bearer …" header value.
func BearerToken(header string) (string, error) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", fmt.Errorf("%w: missing bearer token", ErrUnauthenticated)
	}
	return strings.TrimSpace(tok), nil
}

// KeyVerifier verifies tokens signed with an asymmetric key (RS256, ES256 or EdDSA), for
// production. Audience and Issuer are checked when set.
type KeyVerifier struct {
	Key      any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	Audience string
	Issuer   string
}

// Verify implements Verifier.
func (v KeyVerifier) Verify(token string) (*Claims, error) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256", "ES256", "EdDSA"}), jwt.WithExpirationRequired(),
		jwt.WithLeeway(30 * time.Second),
	}
	if v.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.Audience))
	}
	if v.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.Issuer))
	}
	var c Claims
	if _, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.Key, nil }, opts...); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return &c, nil
}

// LoadPublicKey reads a PEM public key (RSA, ECDSA or Ed25519).
func LoadPublicKey(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	if k, err := jwt.ParseRSAPublicKeyFromPEM(b); err == nil {
		return k, nil
	}
	if k, err := jwt.ParseECPublicKeyFromPEM(b); err == nil {
		return k, nil
	}
	if k, err := jwt.ParseEdPublicKeyFromPEM(b); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("public key %s: not an RSA, ECDSA or Ed25519 PEM key", path)
}
