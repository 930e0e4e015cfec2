package web_test

import (
	"testing"

	"hookstream/pkg/web"
)

func TestRequireLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:0": true, "[::1]:6060": true, "localhost:1": true, "LOCALHOST:1": true, "127.9.9.9:80": true,
		"0.0.0.0:6060": false, ":6060": false, "10.0.0.1:1": false, "[::]:1": false, "example.com:80": false, "nonsense": false,
	} {
		t.Run(addr, func(t *testing.T) {
			if err := web.RequireLoopback(addr); (err == nil) != ok {
				t.Errorf("RequireLoopback(%q) = %v, want ok %v", addr, err, ok)
			}
		})
	}
}
