package e2e

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func make32() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

// hubSignature is seed 000's X-Hub-Signature-256 of body under secret.
func hubSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
