// Package bus wraps NATS and JetStream for hookstream: the embedded server, connecting, the
// streams and buckets every service relies on (EnsureTopology), the pull loop of the pipeline's
// consumers (Pull), the consume-publish-ack loop of a stage (Stage), and the keepers that spare
// work-queue streams a block file per message (Keep).
//
// Like nats.go's jetstream package it never logs and keeps no package-level state: it returns
// errors, hands what goes wrong inside its loops to the OnError handler its caller passes, and
// makes its instruments with the meter its caller passes. Settings are structs whose Validate
// wraps ErrInvalidConfig.
package bus

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Fsync modes for the embedded server.
const (
	FsyncInterval = "interval" // fsync at least every second (default)
	FsyncAlways   = "always"   // fsync before every acknowledgement
)

// ServerConfig configures an embedded NATS server with JetStream on file storage.
type ServerConfig struct {
	// Listen is HOST:PORT for clients; empty means no TCP listener (in-process only).
	Listen   string
	StoreDir string
	// Fsync is FsyncInterval (default) or FsyncAlways.
	Fsync string
	// SyncInterval overrides the interval of FsyncInterval (default 1 s).
	SyncInterval time.Duration
	// ConfigFile is a nats-server configuration file (authorization, accounts, TLS, the mqtt
	// block …) read first; the settings above then override what it says of them: Listen,
	// StoreDir, Fsync, MQTTListen when set, and hookstream's floor of MaxPayload.
	ConfigFile string
	// ServiceUser and ServicePassword, when set and ConfigFile defines users, are added as a user
	// allowed every subject, for the connections of the process embedding the server.
	ServiceUser, ServicePassword string
	// MQTTListen is HOST:PORT of the server's MQTT listener (MQTT 3.1.1, sessions and QoS 1
	// messages kept in JetStream); empty means none.
	MQTTListen string
	// Logger, when set, receives the server's notices, warnings and errors (its debug and trace
	// output stay off). Without one the server logs nothing.
	Logger server.Logger
}

// ErrInvalidConfig wraps every configuration error of this package.
var ErrInvalidConfig = errors.New("invalid bus config")

// StartServer starts an embedded NATS server and waits until it accepts connections. The caller
// owns it and calls Shutdown and WaitForShutdown.
func StartServer(cfg ServerConfig) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("%w: store dir is required", ErrInvalidConfig)
	}
	opts, err := baseOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts.NoLog, opts.NoSigs, opts.JetStream, opts.StoreDir = true, true, true, cfg.StoreDir
	if opts.ServerName == "" {
		opts.ServerName = "hookstream" // MQTT requires one
	}
	// JetStream's own default is a 2-minute fsync interval, which loses acknowledged writes on
	// power loss (Jepsen, 2025). hookstream defaults to 1 s and offers "always".
	opts.SyncInterval, opts.SyncAlways = time.Second, false
	if opts.MaxPayload < 8<<20 {
		opts.MaxPayload = 8 << 20
	}
	// hookstream keeps one durable consumer per stream (subscription) on OUTBOX; nats-server
	// 2.12+ caps a stream at 1,000 consumers by default, which would leave every stream past the
	// 1,000th without deliveries. -1 lifts the default cap.
	opts.JetStreamLimits.DefaultMaxConsumers = -1
	if err := applyFsync(opts, cfg); err != nil {
		return nil, err
	}
	if err := applyListeners(opts, cfg); err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(cfg.Logger, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats server: not ready after 30s")
	}
	return srv, nil
}

// splitListen parses HOST:PORT; port 0 asks for a random port.
func splitListen(what, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %s %q: %v", ErrInvalidConfig, what, addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%w: %s port %q: want 0 to 65535", ErrInvalidConfig, what, port)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	return host, p, nil
}

// baseOptions are the options of cfg.ConfigFile, with the service user added when the file
// defines users; none without a file.
func baseOptions(cfg ServerConfig) (*server.Options, error) {
	if cfg.ConfigFile == "" {
		return &server.Options{}, nil
	}
	opts, err := server.ProcessConfigFile(cfg.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("%w: nats config %s: %v", ErrInvalidConfig, cfg.ConfigFile, err)
	}
	if cfg.ServiceUser == "" {
		return opts, nil
	}
	if opts.Username != "" || opts.Authorization != "" {
		return nil, fmt.Errorf("%w: nats config %s: a single user or token leaves hookstream no user of its own; list users in authorization { users = [...] }", ErrInvalidConfig, cfg.ConfigFile)
	}
	if len(opts.Users) == 0 && len(opts.Nkeys) == 0 {
		return opts, nil
	}
	for _, u := range opts.Users {
		if u.Username == cfg.ServiceUser {
			return nil, fmt.Errorf("%w: nats config %s: user %q is hookstream's own; rename it", ErrInvalidConfig, cfg.ConfigFile, u.Username)
		}
		if u.Account != nil && u.Account.Name != server.DEFAULT_GLOBAL_ACCOUNT {
			return nil, fmt.Errorf("%w: nats config %s: user %q is in account %s; the all-in-one serves the global account only (run hookstream nats and the services apart for accounts)", ErrInvalidConfig, cfg.ConfigFile, u.Username, u.Account.Name)
		}
	}
	opts.Users = append(opts.Users, &server.User{Username: cfg.ServiceUser, Password: cfg.ServicePassword})
	return opts, nil
}

// applyFsync sets the server's fsync policy from cfg.Fsync.
func applyFsync(opts *server.Options, cfg ServerConfig) error {
	switch cfg.Fsync {
	case "", FsyncInterval:
		if cfg.SyncInterval > 0 {
			opts.SyncInterval = cfg.SyncInterval
		}
	case FsyncAlways:
		opts.SyncAlways = true
	default:
		return fmt.Errorf("%w: fsync %q (want %q or %q)", ErrInvalidConfig, cfg.Fsync, FsyncInterval, FsyncAlways)
	}
	return nil
}

// applyListeners sets the client and MQTT listeners from cfg; an empty Listen means none (a
// config file's port is then ignored), an empty MQTTListen leaves the file's mqtt block alone.
func applyListeners(opts *server.Options, cfg ServerConfig) error {
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitListen("listen", cfg.Listen)
		if err != nil {
			return err
		}
		opts.Host, opts.Port, opts.DontListen = host, port, false
	}
	if cfg.MQTTListen != "" {
		host, port, err := splitListen("mqtt listen", cfg.MQTTListen)
		if err != nil {
			return err
		}
		opts.MQTT.Host, opts.MQTT.Port = host, port
	}
	return nil
}
