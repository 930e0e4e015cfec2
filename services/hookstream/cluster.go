package main

import (
	"flag"
	"fmt"

	"hookstream/pkg/bus"
)

// clusterConfig is how `hookstream nats` joins a NATS cluster (nats role only), and how many
// replicas the roles that ensure the topology give every stream and bucket.
type clusterConfig struct {
	// Replicas of every stream and KV bucket (--replicas): 1 on a single server, 3 in a
	// cluster. Every process given it applies it, so all that are given it must agree.
	Replicas int
	// ReplicasSet is whether --replicas (or its variable) was given. A process not given it
	// creates what is missing with 1 replica and rescales nothing, so one started without it
	// cannot shrink a cluster's R3 streams.
	ReplicasSet bool

	ServerName    string // --server-name
	ClusterName   string // --cluster-name
	ClusterListen string // --cluster-listen
	Routes        string // --routes, comma-separated
}

// maxReplicas is JetStream's own limit on a stream's replicas.
const maxReplicas = 5

// clusterFlags registers --replicas on the roles that ensure the topology and the cluster
// flags on the nats role.
func (c *Config) clusterFlags(fs *flag.FlagSet, role string) {
	switch role {
	case "nats":
		fs.StringVar(&c.ServerName, "server-name", env("SERVER_NAME", ""), "NATS server name, unique in the cluster (nats role)")
		fs.StringVar(&c.ClusterName, "cluster-name", env("CLUSTER_NAME", ""), "NATS cluster name, the same on every node (nats role)")
		fs.StringVar(&c.ClusterListen, "cluster-listen", env("CLUSTER_LISTEN", ""), "HOST:PORT for routes from the other cluster nodes (nats role)")
		fs.StringVar(&c.Routes, "routes", env("ROUTES", ""), "comma list of the cluster's nats-route://HOST:PORT URLs (nats role)")
	case "rekey":
	default:
		fs.IntVar(&c.Replicas, "replicas", int(envIntOr("REPLICAS", 1)), "replicas of every stream and bucket (1 single server, 3 in a cluster); when given, existing ones are rescaled to it, when not, they keep theirs")
	}
}

func (c *Config) validateCluster(role string) error {
	switch role {
	case "nats", "rekey":
		return nil
	}
	if c.Replicas < 1 || c.Replicas > maxReplicas {
		return fmt.Errorf("--replicas %d: want 1 to %d", c.Replicas, maxReplicas)
	}
	if role == "all" && c.NATSURL == "" && c.Replicas != 1 {
		return fmt.Errorf("--replicas %d: the all-in-one's embedded server is a single node; give --nats-url of a cluster", c.Replicas)
	}
	return nil
}

// topologyReplicas is bus.Retention.Replicas: --replicas when given, else 0 (keep).
func (c *Config) topologyReplicas() int {
	if !c.ReplicasSet {
		return 0
	}
	return c.Replicas
}

// busCluster is the embedded server's cluster settings.
func (c *Config) busCluster() bus.ClusterConfig {
	return bus.ClusterConfig{
		ServerName: c.ServerName, Name: c.ClusterName,
		Listen: c.ClusterListen, Routes: splitList(c.Routes),
	}
}
