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
	"net/url"
	"strconv"
	"strings"
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
	// ConfigFile is a standard nats-server configuration file (users and permissions, accounts,
	// TLS, the mqtt block, the cluster), read by nats-server itself (server.ProcessConfigFile).
	// What it sets wins; the fields here fill in what it leaves unset (Listen, StoreDir, Fsync,
	// Cluster), but for MQTTListen, which when set replaces the file's MQTT listener.
	ConfigFile string
	// ServiceUser and ServicePassword, when set and ConfigFile defines users, are added as a user
	// allowed every subject, for the connections of the process embedding the server.
	ServiceUser, ServicePassword string
	// MQTTListen is HOST:PORT of the server's MQTT listener (MQTT 3.1.1, sessions and QoS 1
	// messages kept in JetStream); empty leaves the file's mqtt block, if any, alone.
	MQTTListen string
	// Logger, when set, receives the server's notices, warnings and errors (its debug and trace
	// output stay off). Without one the server logs nothing.
	Logger server.Logger
	// Cluster joins the server to a NATS cluster; its zero value is a single server.
	Cluster ClusterConfig
}

// ClusterConfig is how an embedded server joins a NATS cluster, the usual settings as fields.
// What ServerConfig.ConfigFile sets wins; the fields fill in what it leaves unset (so a file can
// carry TLS, accounts or anything else nats-server knows, and the fields cover the common case
// without one).
type ClusterConfig struct {
	// ServerName must be unique in the cluster; JetStream's meta group knows its peers by it.
	ServerName string
	// Name is the cluster's name, the same on every node.
	Name string
	// Listen is HOST:PORT where the node accepts routes from the others.
	Listen string
	// Routes are the nats-route:// URLs of the other nodes (a node may list itself).
	Routes []string
}

// ErrInvalidConfig wraps every configuration error of this package.
var ErrInvalidConfig = errors.New("invalid bus config")

// StartServer starts an embedded NATS server and waits until it accepts connections. The caller
// owns it and calls Shutdown and WaitForShutdown.
func StartServer(cfg ServerConfig) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("%w: store dir is required", ErrInvalidConfig)
	}
	opts, err := serverOptions(cfg)
	if err != nil {
		return nil, err
	}
	if err := prepareMQTT(opts); err != nil {
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
	// A cluster node accepts clients once its routes are up, but JetStream may wait for the
	// meta group's quorum; callers retry topology (ensureTopology) rather than wait here.
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats server: not ready after 30s")
	}
	return srv, nil
}

// serverOptions builds the server's options: the configuration file's when there is one, then
// hookstream's settings for whatever it left unset.
func serverOptions(cfg ServerConfig) (*server.Options, error) {
	opts, err := baseOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts.NoLog, opts.NoSigs, opts.JetStream = true, true, true
	if opts.StoreDir == "" {
		opts.StoreDir = cfg.StoreDir
	}
	if opts.MaxPayload < 8<<20 {
		opts.MaxPayload = 8 << 20
	}
	// hookstream keeps one durable consumer per stream (subscription) on OUTBOX; nats-server
	// 2.12+ caps a stream at 1,000 consumers by default, which would leave every stream past the
	// 1,000th without deliveries. -1 lifts the default cap.
	if opts.JetStreamLimits.DefaultMaxConsumers == 0 {
		opts.JetStreamLimits.DefaultMaxConsumers = -1
	}
	if err := applyFsync(opts, cfg); err != nil {
		return nil, err
	}
	if err := applyListen(opts, cfg.Listen, cfg.ConfigFile != ""); err != nil {
		return nil, err
	}
	if cfg.MQTTListen != "" {
		if opts.MQTT.Host, opts.MQTT.Port, err = splitListen("mqtt listen", cfg.MQTTListen); err != nil {
			return nil, err
		}
	}
	if err := applyCluster(opts, cfg.Cluster); err != nil {
		return nil, err
	}
	return opts, nil
}

// applyFsync sets the fsync policy unless the configuration file chose one.
func applyFsync(opts *server.Options, cfg ServerConfig) error {
	switch cfg.Fsync {
	case "", FsyncInterval, FsyncAlways:
	default:
		return fmt.Errorf("%w: fsync %q (want %q or %q)", ErrInvalidConfig, cfg.Fsync, FsyncInterval, FsyncAlways)
	}
	if opts.SyncAlways || opts.SyncInterval != 0 {
		return nil
	}
	if cfg.Fsync == FsyncAlways {
		opts.SyncAlways = true
		return nil
	}
	// JetStream's own default is a 2-minute fsync interval, which loses acknowledged writes on
	// power loss (Jepsen, 2025). hookstream defaults to 1 s and offers "always".
	opts.SyncInterval = time.Second
	if cfg.SyncInterval > 0 {
		opts.SyncInterval = cfg.SyncInterval
	}
	return nil
}

// applyListen sets the client listener unless the configuration file set its port.
func applyListen(opts *server.Options, listen string, fromFile bool) error {
	if fromFile && opts.Port != 0 {
		return nil
	}
	if listen == "" {
		opts.DontListen = true
		return nil
	}
	host, port, err := splitListen("listen", listen)
	if err != nil {
		return err
	}
	opts.Host, opts.Port = host, port
	return nil
}

// applyCluster fills the server name and the cluster settings the file left unset.
func applyCluster(opts *server.Options, c ClusterConfig) error {
	if opts.ServerName == "" {
		opts.ServerName = c.ServerName
	}
	if opts.Cluster.Name == "" {
		opts.Cluster.Name = c.Name
	}
	if opts.Cluster.Port == 0 && c.Listen != "" {
		host, port, err := splitListen("cluster listen", c.Listen)
		if err != nil {
			return err
		}
		opts.Cluster.Host, opts.Cluster.Port = host, port
	}
	if len(opts.Routes) == 0 && len(c.Routes) > 0 {
		for _, r := range c.Routes {
			u, err := url.Parse(strings.TrimSpace(r))
			if err != nil || u.Host == "" || u.Port() == "" {
				return fmt.Errorf("%w: route %q: want nats-route://HOST:PORT", ErrInvalidConfig, r)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	clustered := opts.Cluster.Port != 0 || len(opts.Routes) > 0
	if clustered && (opts.ServerName == "" || opts.Cluster.Name == "") {
		return fmt.Errorf("%w: a cluster node needs a server name unique in the cluster and the cluster's name", ErrInvalidConfig)
	}
	// JetStream refuses to start clustered without routes, and the server only says so in its log.
	if clustered && len(opts.Routes) == 0 {
		return fmt.Errorf("%w: a cluster node needs routes to the other nodes", ErrInvalidConfig)
	}
	if opts.ServerName == "" {
		opts.ServerName = "hookstream"
	}
	return nil
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
