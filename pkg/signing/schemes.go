package signing

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Scheme names, as in proto (pkg does not import proto's constants to stay a leaf).
const (
	SchemeHubSHA256         = "hub-sha256"
	SchemeHubSHA1           = "hub-sha1"
	SchemeStandard          = "standard-webhooks"
	SchemeStandardEd25519   = "standard-webhooks-ed25519"
	HeaderHubSHA1           = "X-Hub-Signature"
	HeaderHubPreviousSuffix = "-Previous"
	HeaderWebhookID         = "webhook-id"
	HeaderWebhookTimestamp  = "webhook-timestamp"
	HeaderWebhookSignature  = "webhook-signature"
)

// Prefixes of Standard Webhooks key strings.
const (
	PrefixSecret        = "whsec_" // symmetric secret
	PrefixPrivateKey    = "whsk_"  // Ed25519 private key
	PrefixPublicKey     = "whpk_"  // Ed25519 public key
	minStandardKeyBytes = 24
	maxStandardKeyBytes = 64
)

// ErrSecret means a secret does not fit its scheme.
var ErrSecret = errors.New("invalid secret")

// Timestamped reports whether a scheme signs a timestamp, so that its headers must be computed
// at every attempt rather than once.
func Timestamped(scheme string) bool {
	return scheme == SchemeStandard || scheme == SchemeStandardEd25519
}

// Headers computes the signature headers of one request. keys holds the current key first and,
// during a rotation's overlap, the previous one after it; each is the stored form of its scheme
// (see proto.Secret.Current). id and ts (Unix seconds) are used by the timestamped schemes only.
//
// Where the scheme allows several signatures (Standard Webhooks: space-separated), every key
// signs in the one header. The hub schemes' headers hold exactly one signature, which seed 000's
// and seed 004's verifiers compare whole; there the current key signs the usual headers and the
// previous key signs the same headers suffixed "-Previous".
func Headers(scheme string, keys [][]byte, id string, ts int64, body []byte) (map[string]string, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key", ErrSecret)
	}
	h := make(map[string]string, 4)
	switch scheme {
	case "", SchemeHubSHA256, SchemeHubSHA1:
		for i, k := range keys {
			suffix := ""
			if i > 0 {
				suffix = HeaderHubPreviousSuffix
			}
			sig := HubSHA256(k, body)
			h[HeaderHubSHA256+suffix] = sig
			h[HeaderHubSHA256Alt+suffix] = sig
			if scheme == SchemeHubSHA1 {
				h[HeaderHubSHA1+suffix] = HubSHA1(k, body)
			}
			if i == 1 {
				break
			}
		}
	case SchemeStandard, SchemeStandardEd25519:
		sigs := make([]string, 0, len(keys))
		for _, k := range keys {
			var s string
			var err error
			if scheme == SchemeStandard {
				s, err = StandardSign(string(k), id, ts, body)
			} else {
				s, err = Ed25519Sign(k, id, ts, body)
			}
			if err != nil {
				return nil, err
			}
			sigs = append(sigs, s)
		}
		h[HeaderWebhookID] = id
		h[HeaderWebhookTimestamp] = strconv.FormatInt(ts, 10)
		h[HeaderWebhookSignature] = strings.Join(sigs, " ")
	default:
		return nil, fmt.Errorf("unknown signature scheme %q", scheme)
	}
	return h, nil
}

// HubSHA1 returns "sha1=<hex HMAC-SHA1(secret, body)>" (seed 004's deprecated header).
func HubSHA1(secret, body []byte) string {
	m := hmac.New(sha1.New, secret)
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

// signedContent is what Standard Webhooks sign: "{id}.{timestamp}.{body}".
func signedContent(id string, ts int64, body []byte) []byte {
	b := make([]byte, 0, len(id)+len(body)+16)
	b = append(b, id...)
	b = append(b, '.')
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, '.')
	return append(b, body...)
}

// StandardSign returns "v1,<base64 HMAC-SHA256>" for a "whsec_…" secret.
func StandardSign(secret, id string, ts int64, body []byte) (string, error) {
	key, err := ParseStandardSecret(secret)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write(signedContent(id, ts, body))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// Ed25519Sign returns "v1a,<base64 Ed25519 signature>" for a 32-byte private key seed.
func Ed25519Sign(seed []byte, id string, ts int64, body []byte) (string, error) {
	if len(seed) != ed25519.SeedSize {
		return "", fmt.Errorf("%w: ed25519 seed has %d bytes", ErrSecret, len(seed))
	}
	sig := ed25519.Sign(ed25519.NewKeyFromSeed(seed), signedContent(id, ts, body))
	return "v1a," + base64.StdEncoding.EncodeToString(sig), nil
}

// ParseStandardSecret decodes a "whsec_<base64>" secret (24 to 64 bytes) into its HMAC key.
func ParseStandardSecret(s string) ([]byte, error) {
	raw, ok := strings.CutPrefix(s, PrefixSecret)
	if !ok {
		return nil, fmt.Errorf("%w: a standard-webhooks secret starts with %q", ErrSecret, PrefixSecret)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after %q", ErrSecret, PrefixSecret)
	}
	if len(key) < minStandardKeyBytes || len(key) > maxStandardKeyBytes {
		return nil, fmt.Errorf("%w: key has %d bytes, want %d to %d", ErrSecret, len(key), minStandardKeyBytes, maxStandardKeyBytes)
	}
	return key, nil
}

// ParseEd25519Secret decodes a "whsk_<base64>" private key (a 32-byte seed or a 64-byte
// private key) into its seed.
func ParseEd25519Secret(s string) ([]byte, error) {
	raw, ok := strings.CutPrefix(s, PrefixPrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: an ed25519 private key starts with %q", ErrSecret, PrefixPrivateKey)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after %q", ErrSecret, PrefixPrivateKey)
	}
	switch len(key) {
	case ed25519.SeedSize:
		return key, nil
	case ed25519.PrivateKeySize:
		return ed25519.PrivateKey(key).Seed(), nil
	}
	return nil, fmt.Errorf("%w: ed25519 key has %d bytes, want 32 or 64", ErrSecret, len(key))
}

// PublicKey returns the "whpk_<base64>" public key of an Ed25519 seed.
func PublicKey(seed []byte) string {
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return PrefixPublicKey + base64.StdEncoding.EncodeToString(pub)
}

// GenerateHubSecret returns a new hub secret: 32 random bytes, hex-encoded (receivers use the
// secret as a string, as seed 000's Python does).
func GenerateHubSecret() string { return hex.EncodeToString(random32()) }

// GenerateStandardSecret returns a new "whsec_" secret of 32 random bytes.
func GenerateStandardSecret() string {
	return PrefixSecret + base64.StdEncoding.EncodeToString(random32())
}

// GenerateEd25519Seed returns a new Ed25519 private key seed.
func GenerateEd25519Seed() []byte { return random32() }

func random32() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	return b
}
