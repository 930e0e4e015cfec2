package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hookstream/pkg/outbound"
)

// canary is a TCP listener that counts the connections it accepts. A test that ends with a
// canary count of zero proves nothing reached it.
type canary struct {
	ln    net.Listener
	count atomic.Int64
	port  string
}

func newCanary(t *testing.T, host string) *canary {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("canary: %v", err)
	}
	c := &canary{ln: ln}
	_, c.port, _ = net.SplitHostPort(ln.Addr().String())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.count.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return c
}

// fakeResolver answers from a script: the n-th lookup of a name gets answers[name][min(n, last)].
type fakeResolver struct {
	mu      sync.Mutex
	calls   map[string]int
	answers map[string][]string
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := min(r.calls[host], len(seq)-1)
	r.calls[host]++
	return []netip.Addr{netip.MustParseAddr(seq[n])}, nil
}

// TestGuardRefusesInternalDestinations is the SSRF table of issue 8: every form of an internal
// address is refused by CheckURL (create time) and by the client (dial time), a redirect to an
// internal address is not followed, a rebinding resolver cannot pass, environment proxies are
// ignored, and no connection reaches the canary on loopback.
func TestGuardRefusesInternalDestinations(t *testing.T) {
	can := newCanary(t, "127.0.0.1")
	p := can.port
	// The proxy canary sits on an allow-listed address: were the transport to honour
	// HTTP_PROXY, it would connect there.
	proxy := newCanary(t, "127.0.0.2")
	t.Setenv("HTTP_PROXY", "http://127.0.0.2:"+proxy.port)
	t.Setenv("HTTPS_PROXY", "http://127.0.0.2:"+proxy.port)
	t.Setenv("NO_PROXY", "")

	res := &fakeResolver{calls: map[string]int{}, answers: map[string][]string{
		"internal.example": {"127.0.0.1"},
		"metadata.example": {"169.254.169.254"},
		// Public at the create-time check, loopback at dial time.
		"rebind.example":  {"93.184.215.14", "127.0.0.1"},
		"allowed.example": {"127.0.0.2"},
	}}
	g := outbound.New(outbound.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Resolver: res, DialTimeout: time.Second})
	client := g.Client(5 * time.Second)

	hosts := []string{
		"127.0.0.1", "127.1", "2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "017700000001",
		"0.0.0.0", "0", "[::]", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]",
		"[64:ff9b::7f00:1]", "[2002:7f00:1::]", "169.254.169.254", "100.64.0.1", "100.127.255.254",
		"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.0.1", "192.168.255.255",
		"[fc00::1]", "[fdff::1]", "[fe80::1]", "224.0.0.1", "[ff02::1]", "255.255.255.255",
		"localhost", "LOCALHOST.", "api.localhost", "internal.example", "metadata.example",
	}
	for _, h := range hosts {
		t.Run(h, func(t *testing.T) {
			u := "http://" + h + ":" + p + "/hook"
			err := g.CheckURL(u)
			if _, dns := res.answers[h]; dns {
				// Names pass the literal check; their addresses are checked when dialed.
				if err != nil {
					t.Fatalf("CheckURL(%s) = %v, want nil for a name", u, err)
				}
			} else if !errors.Is(err, outbound.ErrForbidden) {
				t.Errorf("CheckURL(%s) = %v, want ErrForbidden", u, err)
			}
			resp, err := client.Get(u)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s answered %d, want a refusal", u, resp.StatusCode)
			}
			if !errors.Is(err, outbound.ErrForbidden) {
				t.Errorf("GET %s: %v, want ErrForbidden", u, err)
			}
		})
	}

	t.Run("dns rebinding", func(t *testing.T) {
		if _, err := g.Resolve(context.Background(), "rebind.example"); err != nil {
			t.Fatalf("first resolution (public) refused: %v", err)
		}
		resp, err := client.Get("http://rebind.example:" + p + "/")
		if err == nil {
			resp.Body.Close()
			t.Fatal("rebound name reached the canary")
		}
		if !errors.Is(err, outbound.ErrForbidden) {
			t.Errorf("GET rebound: %v, want ErrForbidden", err)
		}
	})

	var reached atomic.Int64
	allowed := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		http.Redirect(w, r, "http://127.0.0.1:"+p+"/metadata", http.StatusFound)
	}))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	allowed.Listener.Close()
	allowed.Listener = ln
	allowed.Start()
	t.Cleanup(allowed.Close)
	_, allowedPort, _ := net.SplitHostPort(ln.Addr().String())

	t.Run("redirect to internal address", func(t *testing.T) {
		for _, u := range []string{allowed.URL + "/hook", "http://allowed.example:" + allowedPort + "/hook"} {
			resp, err := client.Get(u)
			if err != nil {
				t.Fatalf("GET %s (allow-listed): %v", u, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusFound {
				t.Errorf("GET %s = %d, want the 302 itself, not followed", u, resp.StatusCode)
			}
		}
		if reached.Load() != 2 {
			t.Errorf("allow-listed server reached %d times, want 2", reached.Load())
		}
	})

	t.Run("proxy env ignored", func(t *testing.T) {
		if g.Transport().Proxy != nil {
			t.Error("Transport().Proxy is set")
		}
		resp, err := client.Get("http://10.0.0.1/")
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, outbound.ErrForbidden) {
			t.Errorf("GET via env proxy: %v, want ErrForbidden (refused at dial, no proxy)", err)
		}
	})

	if n := can.count.Load(); n != 0 {
		t.Errorf("canary on 127.0.0.1:%s accepted %d connections, want 0", p, n)
	}
	if n := proxy.count.Load(); n != 0 {
		t.Errorf("proxy canary accepted %d connections, want 0", n)
	}
}

func TestGuardDevAllowsEverything(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(srv.Close)
	g := outbound.New(outbound.Config{Dev: true})
	if err := g.CheckURL(srv.URL); err != nil {
		t.Fatalf("CheckURL in dev: %v", err)
	}
	resp, err := g.Client(5 * time.Second).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET in dev: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestCheckHostPublic(t *testing.T) {
	g := outbound.New(outbound.Config{})
	for _, h := range []string{"example.com", "hooks.example.org", "93.184.215.14", "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]", "8.8.8.8"} {
		if err := g.CheckHost(h); err != nil {
			t.Errorf("CheckHost(%s) = %v, want nil", h, err)
		}
	}
	// A numeric form of a public address is refused too, naming the canonical form.
	err := g.CheckHost("134744072")
	if !errors.Is(err, outbound.ErrForbidden) || !strings.Contains(err.Error(), "8.8.8.8") {
		t.Errorf("CheckHost(134744072) = %v, want ErrForbidden naming 8.8.8.8", err)
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := outbound.ParseCIDRs([]string{"10.0.0.0/8, 192.168.1.7", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := "[10.0.0.0/8 192.168.1.7/32 fd00::/8]"
	if fmt.Sprint(got) != want {
		t.Errorf("ParseCIDRs = %v, want %s", got, want)
	}
	if _, err := outbound.ParseCIDRs([]string{"10.0.0.0/33"}); err == nil {
		t.Error("ParseCIDRs accepted 10.0.0.0/33")
	}
	g := outbound.New(outbound.Config{Allow: got})
	if err := g.CheckHost("10.1.2.3"); err != nil {
		t.Errorf("allow-listed 10.1.2.3 refused: %v", err)
	}
	if err := g.CheckHost("192.168.1.8"); err == nil {
		t.Error("192.168.1.8 accepted, only .7 is allow-listed")
	}
}
