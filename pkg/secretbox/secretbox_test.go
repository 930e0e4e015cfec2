package secretbox_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/secretbox"
)

func mustKey(t *testing.T) []byte {
	t.Helper()
	k, err := secretbox.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	b1, err := secretbox.New(k1)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("webhook-secret-key")
	ad := []byte("p1.stream-a")
	sealed, err := b1.Seal(secret, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	again, _ := b1.Seal(secret, ad)
	if bytes.Equal(sealed, again) {
		t.Error("two seals of the same value are equal: nonce reused")
	}
	if got, err := b1.Open(sealed, ad); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if secretbox.SealedBy(sealed) != b1.PrimaryID() {
		t.Errorf("SealedBy = %s, want %s", secretbox.SealedBy(sealed), b1.PrimaryID())
	}

	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	b2old, _ := secretbox.New(k2, k1) // rotated: k2 primary, k1 previous
	b2, _ := secretbox.New(k2)
	for name, tc := range map[string]struct {
		box  *secretbox.Box
		data []byte
		ad   []byte
		want error
	}{
		"other stream's key": {b1, sealed, []byte("p1.stream-b"), secretbox.ErrOpen},
		"tampered":           {b1, tampered, ad, secretbox.ErrOpen},
		"unknown key":        {b2, sealed, ad, secretbox.ErrUnknownKey},
		"plaintext":          {b1, []byte("\x82\xa1v\x01\xa3cur\xa6secret"), ad, secretbox.ErrNotSealed},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.box.Open(tc.data, tc.ad); !errors.Is(err, tc.want) {
				t.Errorf("Open = %v, want %v", err, tc.want)
			}
		})
	}
	if got, err := b2old.Open(sealed, ad); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("box with the previous key: Open = %q, %v", got, err)
	}
	if _, err := secretbox.New(k1[:16]); !errors.Is(err, secretbox.ErrInvalidKey) {
		t.Errorf("New(16 bytes) = %v, want ErrInvalidKey", err)
	}
}

func TestParseKey(t *testing.T) {
	k := mustKey(t)
	for _, s := range []string{hex.EncodeToString(k), secretbox.EncodeKey(k), " " + secretbox.EncodeKey(k) + "\n"} {
		got, err := secretbox.ParseKey(s)
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "short", hex.EncodeToString(k[:31])} {
		if _, err := secretbox.ParseKey(s); !errors.Is(err, secretbox.ErrInvalidKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrInvalidKey", s, err)
		}
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", secretbox.DevKeyFile)
	if _, err := secretbox.LoadOrCreateKeyFile(path, false); err == nil {
		t.Fatal("missing key file without create: no error")
	}
	k, err := secretbox.LoadOrCreateKeyFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := secretbox.LoadOrCreateKeyFile(path, true)
	if err != nil || !bytes.Equal(again, k) {
		t.Errorf("second load = %x, %v; want the same key", again, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("data dir holds %d files, want only the key", len(entries))
	}
}

func startKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "secrets", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// TestRekey: values under the old key and plaintext values end up under the new key, readable
// by a box that holds only the new key; a second run changes nothing.
func TestRekey(t *testing.T) {
	ctx := context.Background()
	kv := startKV(t)
	oldKey, newKey := mustKey(t), mustKey(t)
	oldBox, _ := secretbox.New(oldKey)
	values := map[string][]byte{"p1.a": []byte("alpha"), "p1.b": []byte("bravo"), "p2.c": []byte("charlie")}
	for k, v := range values {
		data := v
		if k != "p2.c" { // p2.c stays plaintext, as written before encryption existed
			data, _ = oldBox.Seal(v, []byte(k))
		}
		if _, err := kv.Put(ctx, k, data); err != nil {
			t.Fatal(err)
		}
	}
	rotating, _ := secretbox.New(newKey, oldKey)
	st, err := secretbox.Rekey(ctx, kv, rotating)
	if err != nil {
		t.Fatal(err)
	}
	if st != (secretbox.RekeyStats{Resealed: 2, Sealed: 1}) {
		t.Errorf("stats = %+v", st)
	}
	newOnly, _ := secretbox.New(newKey)
	for k, want := range values {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := newOnly.Open(e.Value(), []byte(k))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after rekey: %q, %v", k, got, err)
		}
		if bytes.Contains(e.Value(), want) {
			t.Errorf("%s still holds its plaintext", k)
		}
	}
	st, err = secretbox.Rekey(ctx, kv, rotating)
	if err != nil || st != (secretbox.RekeyStats{Unchanged: 3}) {
		t.Errorf("second rekey: %+v, %v", st, err)
	}
	// A box without the key that sealed a value stops at it, naming the problem.
	stranger, _ := secretbox.New(mustKey(t))
	if _, err := secretbox.Rekey(ctx, kv, stranger); !errors.Is(err, secretbox.ErrUnknownKey) {
		t.Errorf("rekey without the old key: %v, want ErrUnknownKey", err)
	}
}
