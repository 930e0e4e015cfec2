package e2e

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestMalformedEnvRefused: a HOOKSTREAM_* variable the binary cannot read stops it at start,
// naming the variable, instead of leaving the setting at its default (a quota typo would mean
// unlimited); nothing was started.
func TestMalformedEnvRefused(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	p := startProcEnv(t, "hookstream", []string{"HOOKSTREAM_QUOTA_DELIVERIES=10k"},
		"--dev", "--data", t.TempDir(), "--http-addr", addr, "--nats-listen", freeAddr(t))
	code, logs := exited(t, p, 20*time.Second)
	if code == 0 || !strings.Contains(logs, `HOOKSTREAM_QUOTA_DELIVERIES="10k"`) || !strings.Contains(logs, "--quota-deliveries") {
		t.Fatalf("exit %d, %s", code, logs)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("something listens on %s", addr)
	}
}
