package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
	"hookstream/pkg/outbound"
	"hookstream/pkg/secretbox"
	"hookstream/proto"
)

// securityFlags registers the flags of the outbound guard, the secret store and the token
// verifiers.
func (c *Config) securityFlags(fs *flag.FlagSet) {
	// HOOKSTREAM_ALLOW_CIDR comes in through applyEnv, before the flags given.
	fs.Func("allow-cidr", "allow webhook destinations in this CIDR although private (repeatable, or a comma list)", func(s string) error {
		if _, err := outbound.ParseCIDRs([]string{s}); err != nil {
			return err
		}
		c.AllowCIDR = append(c.AllowCIDR, s)
		return nil
	})
	fs.StringVar(&c.JWKSURL, "jwks-url", env("JWKS_URL", ""), "JWKS URL whose keys verify API tokens (RS256, ES256, EdDSA); refreshed every 15 min")
	fs.StringVar(&c.MasterKeyFile, "master-key-file", env("MASTER_KEY_FILE", ""), "file holding the master key that encrypts webhook secrets (HOOKSTREAM_MASTER_KEY wins)")
}

func (c *Config) validateSecurity() error {
	if _, err := outbound.ParseCIDRs(c.AllowCIDR); err != nil {
		return fmt.Errorf("--allow-cidr: %w", err)
	}
	if c.JWKSURL != "" && c.JWTPublicKey != "" {
		return errors.New("--jwks-url and --jwt-public-key exclude each other: publish the key in the JWKS")
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("--jwks-url %q: want an http(s) URL", c.JWKSURL)
		}
	}
	return nil
}

// guard builds the outbound guard of every call to a customer's address: off in --dev, else the
// default deny list less --allow-cidr.
func (c *Config) guard() *outbound.Guard {
	allow, _ := outbound.ParseCIDRs(c.AllowCIDR) // validated at start
	return outbound.New(outbound.Config{Dev: c.Dev, Allow: allow})
}

// jwksVerifier verifies tokens against --jwks-url, refreshing it until ctx ends.
func (c *Config) jwksVerifier(ctx context.Context, log *slog.Logger) (auth.Verifier, error) {
	return auth.NewJWKSVerifier(ctx, auth.JWKSConfig{
		URL: c.JWKSURL, Audience: c.JWTAudience, Issuer: c.JWTIssuer,
		OnRefreshError: func(err error) { log.Warn("jwks fetch failed", "url", c.JWKSURL, "error", err.Error()) },
	})
}

// masterKeys returns the master key (HOOKSTREAM_MASTER_KEY, else --master-key-file, else in
// --dev a key generated under the data dir) and the previous keys still accepted for opening
// (HOOKSTREAM_MASTER_KEY_PREVIOUS, comma-separated).
func (c *Config) masterKeys() (primary []byte, previous [][]byte, err error) {
	switch {
	case os.Getenv("HOOKSTREAM_MASTER_KEY") != "":
		if primary, err = secretbox.ParseKey(os.Getenv("HOOKSTREAM_MASTER_KEY")); err != nil {
			return nil, nil, fmt.Errorf("HOOKSTREAM_MASTER_KEY: %w", err)
		}
	case c.MasterKeyFile != "":
		if primary, err = secretbox.LoadOrCreateKeyFile(c.MasterKeyFile, false); err != nil {
			return nil, nil, err
		}
	case c.Dev:
		if primary, err = secretbox.LoadOrCreateKeyFile(filepath.Join(c.Data, secretbox.DevKeyFile), true); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, errors.New("no master key for webhook secrets: set HOOKSTREAM_MASTER_KEY (32 bytes, base64 or hex; `hookstream keygen` makes one) or --master-key-file, or run with --dev")
	}
	for i, s := range splitList(os.Getenv("HOOKSTREAM_MASTER_KEY_PREVIOUS")) {
		k, err := secretbox.ParseKey(s)
		if err != nil {
			return nil, nil, fmt.Errorf("HOOKSTREAM_MASTER_KEY_PREVIOUS entry %d: %w", i+1, err)
		}
		previous = append(previous, k)
	}
	return primary, previous, nil
}

// secretBox builds the Box of the api (seals) and the signer (opens).
func (c *Config) secretBox() (*secretbox.Box, error) {
	primary, previous, err := c.masterKeys()
	if err != nil {
		return nil, err
	}
	return secretbox.New(primary, previous...)
}

// runKeygen prints a new random master key.
func runKeygen(out io.Writer) error {
	k, err := secretbox.GenerateKey()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, secretbox.EncodeKey(k))
	return nil
}

// runRekey re-encrypts every webhook secret under the current master key. It talks to the NATS
// server of --nats-url, or, without it, opens the data dir's JetStream store itself (the
// all-in-one must be stopped then).
func runRekey(ctx context.Context, args []string, out, stderr io.Writer) error {
	cfg, err := parseConfig("rekey", args, stderr)
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		// The store and, in --dev, the master key are the data directory's.
		lock, err := lockData(ctx, &cfg, "rekey", cfg.logger(stderr))
		if err != nil {
			return err
		}
		defer lock.Release()
	}
	box, err := cfg.secretBox()
	if err != nil {
		return err
	}
	var srv *server.Server
	if cfg.NATSURL == "" {
		if srv, err = bus.StartServer(bus.ServerConfig{StoreDir: filepath.Join(cfg.Data, "jetstream")}); err != nil {
			return err
		}
		defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	}
	conn, err := bus.Connect(cfg.NATSURL, srv, "rekey")
	if err != nil {
		return err
	}
	defer conn.Close()
	kv, err := conn.JS.KeyValue(ctx, proto.BucketSecrets)
	if err != nil {
		return fmt.Errorf("rekey: %w", err)
	}
	st, err := secretbox.Rekey(ctx, kv, box)
	fmt.Fprintf(out, "rekey: key %s: %d re-encrypted, %d plaintext sealed, %d already current\n", box.PrimaryID(), st.Resealed, st.Sealed, st.Unchanged)
	return err
}
