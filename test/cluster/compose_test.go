// Package cluster runs docker-compose.yml — three NATS nodes, two replicas of every service —
// under a steady load and injects faults (make test-cluster). It needs Docker with compose and
// the image's binary (make image-bin); without HOOKSTREAM_CLUSTER_TEST=1 it is skipped, so the
// ordinary suite (make test) never starts containers.
package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// deployment is one docker compose project made by the test, under a unique name, with host
// ports of its own on 127.0.0.1.
type deployment struct {
	t       *testing.T
	root    string   // the repository, where docker-compose.yml is
	compose []string // "docker compose" or "docker-compose"
	project string
	env     []string
	api     string // http://127.0.0.1:PORT of api-1
	nats    []string
	recv    string // http://127.0.0.1:PORT of the receiver
}

// services are the compose services the faults act on; the receiver is left alone so that its
// record of deliveries survives every scenario.
var services = []string{"nats-1", "nats-2", "nats-3", "ingest", "matcher", "signer", "delivery", "api-1", "api-2"}

// composeCommand finds the compose tool: the docker CLI plugin, else docker-compose (v1).
func composeCommand() ([]string, error) {
	if err := exec.Command("docker", "compose", "version").Run(); err == nil {
		return []string{"docker", "compose"}, nil
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, fmt.Errorf("neither docker compose nor docker-compose is installed")
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// startDeployment builds the image and starts the compose project, removing its containers,
// volumes and network when the test ends, failed or not.
func startDeployment(t *testing.T) *deployment {
	t.Helper()
	if os.Getenv("HOOKSTREAM_CLUSTER_TEST") != "1" {
		t.Skip("cluster fault tests run with make test-cluster (HOOKSTREAM_CLUSTER_TEST=1; they need Docker)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "image", "hookstream")); err != nil {
		t.Fatalf("no image binary (make image-bin): %v", err)
	}
	cc, err := composeCommand()
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{t: t, root: root, compose: cc, project: fmt.Sprintf("hsct%d", time.Now().UnixNano()%1_000_000_000)}
	ports := map[string]string{}
	for _, name := range []string{"API", "API2", "NATS1", "NATS2", "NATS3", "RECEIVER"} {
		ports[name] = freePort(t)
		d.env = append(d.env, "HOST_"+name+"_PORT="+ports[name])
	}
	// Retries come within milliseconds, so a delivery that failed in a fault is tried again
	// while the scenario still runs.
	d.env = append(d.env, "HOOKSTREAM_RETRY_SCALE=0.001")
	d.api = "http://127.0.0.1:" + ports["API"]
	d.recv = "http://127.0.0.1:" + ports["RECEIVER"]
	for _, n := range []string{"NATS1", "NATS2", "NATS3"} {
		d.nats = append(d.nats, "nats://127.0.0.1:"+ports[n])
	}
	t.Cleanup(d.down)
	d.run(5*time.Minute, "up", "--build", "-d")
	d.waitHealthy(3 * time.Minute)
	return d
}

// down removes everything the project made. It runs even when the test failed.
func (d *deployment) down() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if d.t.Failed() {
		out, _ := d.cmd(ctx, "logs", "--tail", "30").CombinedOutput()
		d.t.Logf("last logs of every container:\n%s", out)
	}
	if out, err := d.cmd(ctx, "down", "-v", "--remove-orphans", "-t", "5").CombinedOutput(); err != nil {
		d.t.Errorf("compose down: %v\n%s", err, out)
	}
}

func (d *deployment) cmd(ctx context.Context, args ...string) *exec.Cmd {
	all := append(append(d.compose[1:], "-p", d.project), args...)
	c := exec.CommandContext(ctx, d.compose[0], all...)
	c.Dir = d.root
	c.Env = append(os.Environ(), d.env...)
	return c
}

// run runs a compose command, failing the test when it fails; it returns its standard output.
func (d *deployment) run(timeout time.Duration, args ...string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb bytes.Buffer
	c := d.cmd(ctx, args...)
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		d.t.Fatalf("compose %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// docker runs a docker command, failing the test when it fails.
func (d *deployment) docker(args ...string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// containers are the ids of a service's containers, in a stable order.
func (d *deployment) containers(service string) []string {
	d.t.Helper()
	return strings.Fields(d.run(time.Minute, "ps", "-q", service))
}

// waitHealthy waits until every container of the project is running and healthy.
func (d *deployment) waitHealthy(timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ids := strings.Fields(d.run(time.Minute, "ps", "-q"))
		var bad []string
		for _, id := range ids {
			st := d.docker("inspect", "-f", "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", id)
			if f := strings.Fields(st); len(f) < 3 || f[1] != "running" || f[2] != "healthy" {
				bad = append(bad, st)
			}
		}
		if len(ids) >= 14 && len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("deployment not healthy after %s (%d containers): %v", timeout, len(ids), bad)
		}
		time.Sleep(time.Second)
	}
}

// waitContainer waits until one container is running and healthy: cheaper than waitHealthy
// after a fault that touched only it.
func (d *deployment) waitContainer(id string, timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := d.docker("inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", id)
		if st == "running healthy" {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("container %s not healthy after %s: %s", id, timeout, st)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// token mints a development token for partition in api-1 (the keys volume holds the key).
func (d *deployment) token(partition string) string {
	d.t.Helper()
	return strings.TrimSpace(d.run(time.Minute, "exec", "-T", "api-1", "/hookstream", "token", "--partition", partition))
}

// network is the project's compose network.
func (d *deployment) network() string {
	d.t.Helper()
	for _, n := range strings.Fields(d.docker("network", "ls", "--format", "{{.Name}}")) {
		if n == d.project+"_default" {
			return n
		}
	}
	d.t.Fatalf("no network %s_default", d.project)
	return ""
}
