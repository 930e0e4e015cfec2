// Package secretbox encrypts webhook secrets at rest with AES-256-GCM under a master key.
//
// A sealed value is
//
//	"hsb1" | key id (8 bytes) | nonce (12 bytes) | ciphertext and GCM tag
//
// The key id names the master key that sealed it, so a Box that holds the current key and the
// previous ones opens values sealed under any of them while a rotation re-encrypts them. The
// caller passes associated data (the KV key of the secret) that must match at Open: a sealed
// value copied onto another stream's key does not open.
package secretbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of a master key: 32 bytes, AES-256.
const KeySize = 32

const (
	magic     = "hsb1"
	kidSize   = 8
	nonceSize = 12
	header    = len(magic) + kidSize + nonceSize
)

// Errors.
var (
	// ErrNotSealed means a value does not carry the sealed format (a plaintext value written
	// before encryption was on, or garbage).
	ErrNotSealed = errors.New("secretbox: value is not sealed")
	// ErrUnknownKey means a value was sealed under a master key this Box does not hold.
	ErrUnknownKey = errors.New("secretbox: sealed under an unknown master key")
	// ErrOpen means authentication failed: wrong key, altered value or wrong associated data.
	ErrOpen = errors.New("secretbox: cannot open value")
	// ErrInvalidKey means a master key is not 32 bytes.
	ErrInvalidKey = errors.New("secretbox: invalid master key")
)

type key struct {
	id   [kidSize]byte
	aead cipher.AEAD
}

// Box seals with its primary key and opens with the primary or any previous key. It is safe
// for concurrent use.
type Box struct {
	primary key
	keys    map[[kidSize]byte]cipher.AEAD
}

// New returns a Box that seals under primary and also opens values sealed under previous.
func New(primary []byte, previous ...[]byte) (*Box, error) {
	p, err := newKey(primary)
	if err != nil {
		return nil, err
	}
	b := &Box{primary: p, keys: map[[kidSize]byte]cipher.AEAD{p.id: p.aead}}
	for i, raw := range previous {
		k, err := newKey(raw)
		if err != nil {
			return nil, fmt.Errorf("previous key %d: %w", i+1, err)
		}
		b.keys[k.id] = k.aead
	}
	return b, nil
}

func newKey(raw []byte) (key, error) {
	if len(raw) != KeySize {
		return key{}, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	return key{id: KeyID(raw), aead: aead}, nil
}

// KeyID derives the public id of a master key (a hash, so it reveals nothing of the key).
func KeyID(raw []byte) [kidSize]byte {
	sum := sha256.Sum256(append([]byte("hookstream secretbox key id\x00"), raw...))
	var id [kidSize]byte
	copy(id[:], sum[:])
	return id
}

// PrimaryID returns the hex id of the key that Seal uses.
func (b *Box) PrimaryID() string { return hex.EncodeToString(b.primary.id[:]) }

// Seal encrypts plaintext under the primary key, binding it to ad.
func (b *Box) Seal(plaintext, ad []byte) ([]byte, error) {
	out := make([]byte, header, header+len(plaintext)+b.primary.aead.Overhead())
	copy(out, magic)
	copy(out[len(magic):], b.primary.id[:])
	nonce := out[len(magic)+kidSize : header]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secretbox: nonce: %w", err)
	}
	return b.primary.aead.Seal(out, nonce, plaintext, ad), nil
}

// Open decrypts a value sealed under any key of the Box with the same ad.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	if !IsSealed(sealed) {
		return nil, ErrNotSealed
	}
	var id [kidSize]byte
	copy(id[:], sealed[len(magic):])
	aead, ok := b.keys[id]
	if !ok {
		return nil, fmt.Errorf("%w %x", ErrUnknownKey, id)
	}
	pt, err := aead.Open(nil, sealed[len(magic)+kidSize:header], sealed[header:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// SealedBy returns the hex key id of a sealed value, or "" when it is not sealed.
func SealedBy(sealed []byte) string {
	if !IsSealed(sealed) {
		return ""
	}
	return hex.EncodeToString(sealed[len(magic) : len(magic)+kidSize])
}

// IsSealed reports whether b has the sealed format.
func IsSealed(b []byte) bool {
	return len(b) >= header+16 && bytes.HasPrefix(b, []byte(magic))
}

// GenerateKey returns a new random master key.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// EncodeKey writes a key in the form ParseKey reads (standard base64).
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// ParseKey reads a 32-byte key written as hex (64 characters) or base64 (standard or URL,
// padded or not).
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: want 32 bytes as 64 hex digits or base64", ErrInvalidKey)
}

// DevKeyFile is where a --dev instance keeps its generated master key inside its data dir.
const DevKeyFile = "master.key"

// LoadOrCreateKeyFile reads a key file (ParseKey's forms); when it does not exist and create is
// set, it writes a new random key there with mode 0600.
func LoadOrCreateKeyFile(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("master key file %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) || !create {
		return nil, fmt.Errorf("read master key: %w", err)
	}
	k, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Write a temporary file and link it into place: the key file appears whole or not at all,
	// and a process that lost the race reads the winner's key.
	f, err := os.CreateTemp(dir, ".master-key-*")
	if err != nil {
		return nil, fmt.Errorf("write master key: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("write master key: %w", err)
	}
	if _, err := f.WriteString(EncodeKey(k) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write master key: %w", err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateKeyFile(path, false)
		}
		return nil, fmt.Errorf("write master key: %w", err)
	}
	return k, nil
}
