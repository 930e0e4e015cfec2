package web

import (
	"fmt"
	"net"
	"strings"
)

// RequireLoopback returns an error unless addr is HOST:PORT with a loopback host (127.0.0.0/8,
// ::1 or localhost): for listeners that must never be reachable from beyond the machine, such as
// profiling endpoints and the load tool's receiver.
func RequireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q is not a loopback address", addr)
	}
	return nil
}
