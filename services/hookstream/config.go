package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
)

// Config is the configuration of one hookstream process, filled from flags and HOOKSTREAM_*
// environment variables (a flag given on the command line wins), validated once at start.
type Config struct {
	Data       string
	HTTPAddr   string
	NATSListen string
	NATSURL    string
	// NATSConfig is a nats-server configuration file for the embedded server (all-in-one, nats).
	NATSConfig string
	// MQTTListen enables the embedded server's MQTT listener on HOST:PORT (all-in-one, nats).
	MQTTListen string
	Dev        bool
	AllowHTTP  bool
	Fsync      string
	RetryScale float64
	LogFormat  string
	LogLevel   string
	// DLQRetention is how long dead letters are kept (default 28 days, at most 6 months).
	DLQRetention time.Duration
	// DedupWindow is how long every stream remembers message ids (bus.Retention.Duplicates).
	DedupWindow time.Duration

	JWTPublicKey string
	JWTAudience  string
	JWTIssuer    string

	// AllowCIDR lists destinations allowed although private (--allow-cidr, repeatable).
	AllowCIDR []string
	// JWKSURL is where the token signing keys are published (--jwks-url).
	JWKSURL string
	// MasterKeyFile holds the master key of webhook secrets (HOOKSTREAM_MASTER_KEY wins).
	MasterKeyFile string
	// PprofAddr serves net/http/pprof on this loopback address when set (off by default).
	PprofAddr string
	// LockWait bounds the wait for the data directory's lock held by a process that is stopping.
	LockWait time.Duration

	quotaConfig   // quota.go
	clusterConfig // cluster.go
}

// parseConfig reads the configuration of a process of role: the flags in args over the
// HOOKSTREAM_* variables (applyEnv) over the defaults, validated. -h and flag errors go to
// stderr.
func parseConfig(role string, args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs, role)
	if err := applyEnv(fs); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	fs.Visit(func(f *flag.Flag) { c.ReplicasSet = c.ReplicasSet || f.Name == "replicas" })
	if err := c.validate(); err != nil {
		return c, err
	}
	if err := c.validateCluster(role); err != nil {
		return c, err
	}
	return c, c.validateRole(role)
}

// validateRole refuses the settings of an embedded server where the process embeds none.
func (c *Config) validateRole(role string) error {
	for _, f := range []struct{ name, value string }{{"--mqtt-listen", c.MQTTListen}, {"--nats-config", c.NATSConfig}} {
		if f.value == "" {
			continue
		}
		if role != "all" && role != "nats" {
			return fmt.Errorf("%s: %s embeds no NATS server; give it to the all-in-one or to hookstream nats", f.name, role)
		}
		if role == "all" && c.NATSURL != "" {
			return fmt.Errorf("%s: with --nats-url the all-in-one embeds no NATS server; configure that server instead", f.name)
		}
	}
	return nil
}

// flags registers the flags of cfg on fs, with defaults taken from the environment (env.go).
func (c *Config) flags(fs *flag.FlagSet, role string) {
	fs.StringVar(&c.Data, "data", env("DATA", "./data"), "data directory (JetStream storage, dev keys)")
	httpDefault := "127.0.0.1:8080"
	if role != "all" && role != "api" {
		httpDefault = "" // health endpoints only when asked for
	}
	fs.StringVar(&c.HTTPAddr, "http-addr", env("HTTP_ADDR", httpDefault), "HTTP listen address (API, HTTP ingest, /healthz, /readyz)")
	fs.StringVar(&c.NATSListen, "nats-listen", env("NATS_LISTEN", "127.0.0.1:4222"), "client address of the embedded NATS server")
	fs.StringVar(&c.NATSURL, "nats-url", env("NATS_URL", ""), "external NATS server URL (the all-in-one then embeds none)")
	fs.StringVar(&c.NATSConfig, "nats-config", env("NATS_CONFIG", ""), "nats-server configuration file for the embedded server (users and permissions, TLS, the mqtt block, the cluster); what it sets wins over --nats-listen, --data, --fsync and the cluster flags, which fill in what it leaves unset; --mqtt-listen, when given, moves its MQTT listener")
	fs.StringVar(&c.MQTTListen, "mqtt-listen", env("MQTT_LISTEN", ""), "HOST:PORT of the embedded NATS server's MQTT listener (off when empty); topics hookstream/ingest/{partition}/… map to the ingest subjects")
	fs.BoolVar(&c.Dev, "dev", envBool("DEV"), "development mode: HS256 dev tokens, plain-http and private webhook URLs")
	fs.BoolVar(&c.AllowHTTP, "allow-http", envBool("ALLOW_HTTP"), "accept plain-http webhook URLs outside --dev")
	fs.StringVar(&c.Fsync, "fsync", env("FSYNC", bus.FsyncInterval), "NATS durability: interval (embedded server fsyncs every 1s) or always (fsync before every acknowledgement; services then store what they write together as atomic batches, one fsync each; with --nats-url, say always when that server syncs every write)")
	fs.Float64Var(&c.RetryScale, "retry-scale", envFloat("RETRY_SCALE", 1), "multiply every retry delay (e.g. 0.001 in tests)")
	fs.DurationVar(&c.DLQRetention, "dlq-retention", envDuration("DLQ_RETENTION", 28*24*time.Hour), "how long undelivered deliveries stay in the dead-letter stream (at most 4392h = 6 months)")
	fs.DurationVar(&c.DedupWindow, "dedup-window", envDuration("DEDUP_WINDOW", bus.DefaultDuplicates), "how long every stream remembers message ids to drop a re-publish after a crash (at most 24h; memory grows with it under load, see README Memory)")
	fs.StringVar(&c.LogFormat, "log-format", env("LOG_FORMAT", "json"), "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	fs.StringVar(&c.JWTPublicKey, "jwt-public-key", env("JWT_PUBLIC_KEY", ""), "PEM public key that verifies API tokens (RS256, ES256, EdDSA)")
	fs.StringVar(&c.JWTAudience, "jwt-audience", env("JWT_AUDIENCE", ""), "required token audience")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", env("JWT_ISSUER", ""), "required token issuer")
	c.securityFlags(fs)
	c.quotaFlags(fs)
	c.clusterFlags(fs, role)
	fs.StringVar(&c.PprofAddr, "pprof-addr", env("PPROF_ADDR", ""), "serve net/http/pprof on this loopback address (off when empty)")
	fs.DurationVar(&c.LockWait, "lock-wait", envDuration("LOCK_WAIT", defaultLockWait), "how long to wait for the --data directory of a process that is still stopping (one process per data directory)")
}

func (c *Config) validate() error {
	if c.Fsync != bus.FsyncInterval && c.Fsync != bus.FsyncAlways {
		return fmt.Errorf("--fsync %q: want interval or always", c.Fsync)
	}
	if c.RetryScale <= 0 || c.RetryScale > 1 {
		return fmt.Errorf("--retry-scale %v: want 0 < scale <= 1", c.RetryScale)
	}
	if c.DLQRetention <= 0 || c.DLQRetention > bus.MaxDLQRetention {
		return fmt.Errorf("--dlq-retention %s: want more than 0 and at most %s", c.DLQRetention, bus.MaxDLQRetention)
	}
	if c.DedupWindow <= 0 || c.DedupWindow > bus.MaxDuplicates {
		return fmt.Errorf("--dedup-window %s: want more than 0 and at most %s", c.DedupWindow, bus.MaxDuplicates)
	}
	if c.DedupWindow > c.DLQRetention {
		return fmt.Errorf("--dedup-window %s: want at most --dlq-retention (%s)", c.DedupWindow, c.DLQRetention)
	}
	if c.LockWait < 0 {
		return fmt.Errorf("--lock-wait %s: want 0 or more", c.LockWait)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("--log-format %q: want json or text", c.LogFormat)
	}
	if err := new(slog.Level).UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if err := validatePprofAddr(c.PprofAddr); err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	if err := c.validateQuota(); err != nil {
		return err
	}
	return c.validateSecurity()
}

// logger builds the process's logger, writing to w in --log-format at --log-level. It is passed
// to whatever logs; slog's default logger is left alone.
func (c *Config) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if c.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(traceLogHandler(h))
}

// verifier builds the token verifier: a JWKS or a public key when configured, else the dev HS256
// key in --dev.
func (c *Config) verifier(ctx context.Context, log *slog.Logger) (auth.Verifier, error) {
	if c.JWKSURL != "" {
		return c.jwksVerifier(ctx, log)
	}
	if c.JWTPublicKey != "" {
		key, err := auth.LoadPublicKey(c.JWTPublicKey)
		if err != nil {
			return nil, err
		}
		return auth.KeyVerifier{Key: key, Audience: c.JWTAudience, Issuer: c.JWTIssuer}, nil
	}
	if c.Dev {
		key, err := auth.LoadDevKey(c.Data, true)
		if err != nil {
			return nil, err
		}
		return auth.HMACVerifier{Key: key}, nil
	}
	return nil, errors.New("no token verifier: pass --jwks-url or --jwt-public-key, or --dev for HS256 development tokens")
}

// tokenTTL is how long a minted dev token is valid by default.
const tokenTTL = 30 * 24 * time.Hour
