// Package outbound builds the network clients of every call hookstream makes to an address a
// customer chose: webhook deliveries, test deliveries, OAuth 2 token calls. Its Guard refuses,
// at dial time and on the resolved address, every destination that is not public unicast:
// loopback, private, link-local (cloud metadata 169.254.169.254), CGNAT, multicast,
// unspecified, documentation and reserved ranges, and the IPv6 forms that embed them
// (IPv4-mapped, NAT64, 6to4). Because the check runs in the dialer's Control, after name
// resolution and before connect(2), DNS rebinding cannot pass it and a refused destination
// never sees a packet.
//
// The transports it builds never use an environment proxy (Go does not proxy loopback hosts, so
// a proxy would both bypass the check and leak requests) and its clients never follow redirects.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// ErrForbidden wraps every refusal of a destination. errors.Is finds it through the *url.Error
// and *net.OpError that net/http wraps around a dial error.
var ErrForbidden = errors.New("destination not allowed")

// Resolver looks host names up. *net.Resolver implements it; tests inject their own to play DNS
// rebinding.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Guard. The zero value guards with the default deny list and no
// exceptions.
type Config struct {
	// Dev turns the address check off: loopback and private destinations are allowed (--dev).
	Dev bool
	// Allow lists prefixes that are allowed although the deny list covers them (--allow-cidr),
	// e.g. a webhook receiver on the operator's own private network.
	Allow []netip.Prefix
	// Resolver resolves host names (default net.DefaultResolver).
	Resolver Resolver
	// DialTimeout bounds one TCP connect (default 5 s).
	DialTimeout time.Duration
}

// Guard checks destinations and dials them. It is safe for concurrent use and must not be
// changed after New.
type Guard struct {
	cfg      Config
	ssrf     *ssrf.Guardian
	resolver Resolver
	dialer   *net.Dialer
}

// New returns a Guard for cfg.
func New(cfg Config) *Guard {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	g := &Guard{cfg: cfg, ssrf: ssrf.New(ssrf.WithAnyPort()), resolver: cfg.Resolver}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	g.dialer = &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	if !cfg.Dev {
		g.dialer.Control = g.control
	}
	return g
}

// CheckAddr reports whether ip may be connected to, wrapping ErrForbidden if not.
func (g *Guard) CheckAddr(ip netip.Addr) error {
	if g.cfg.Dev {
		return nil
	}
	ip = ip.WithZone("")
	for _, p := range g.cfg.Allow {
		if p.Contains(ip) || p.Contains(ip.Unmap()) {
			return nil
		}
	}
	if err := g.ssrf.SafeAddr(ip); err != nil {
		return fmt.Errorf("%w: %s is not a public address", ErrForbidden, ip)
	}
	return nil
}

// control is the dialer's Control: it sees the address the socket is about to connect to.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("%w: network %s", ErrForbidden, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrForbidden, address)
	}
	return g.CheckAddr(ap.Addr())
}

// CheckHost checks a URL's host name without resolving it: an IP literal must be allowed by
// CheckAddr; "localhost" and its subdomains are refused; so are numeric forms that some
// resolvers read as IPv4 addresses (127.1, 2130706433, 0x7f000001, 017700000001), which are
// ambiguous at best. Names are otherwise accepted: the dialer checks what they resolve to.
func (g *Guard) CheckHost(host string) error {
	if g.cfg.Dev {
		return nil
	}
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if h == "" {
		return fmt.Errorf("%w: empty host", ErrForbidden)
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return g.CheckAddr(ip)
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return fmt.Errorf("%w: %s is a loopback name", ErrForbidden, host)
	}
	if ip, ok := parseLegacyIPv4(h); ok {
		if err := g.CheckAddr(ip); err != nil {
			return fmt.Errorf("%w: %s means %s, which is not a public address", ErrForbidden, host, ip)
		}
		return fmt.Errorf("%w: %s is a non-standard form of the address %s; write it as %s", ErrForbidden, host, ip, ip)
	}
	return nil
}

// CheckURL parses raw and checks its host with CheckHost. It does not judge the scheme.
func (g *Guard) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	return g.CheckHost(u.Hostname())
}

// Resolve looks host up and checks every address it resolves to, for callers that want a clear
// error before dialing (the dialer checks again on every connection, whatever this answered).
func (g *Guard) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if err := g.CheckHost(host); err != nil {
		return nil, err
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{ip}, nil
	}
	ips, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if err := g.CheckAddr(ip); err != nil {
			return nil, fmt.Errorf("%s resolves to %s: %w", host, ip, err)
		}
	}
	return ips, nil
}

// DialContext dials addr (host:port), resolving a host name with the Guard's resolver and trying
// each address in turn; every connect is checked in the dialer's Control. It has the signature of
// http.Transport.DialContext and of delivery.Config.Dial.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if err := g.CheckHost(host); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if _, err := netip.ParseAddr(host); err == nil || g.cfg.Dev {
		return g.dialer.DialContext(ctx, network, addr)
	}
	ips, err := g.resolver.LookupNetIP(ctx, ipNetwork(network), host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	var errs []error
	for _, ip := range ips {
		c, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(ip.WithZone("").String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func ipNetwork(network string) string {
	switch network {
	case "tcp4":
		return "ip4"
	case "tcp6":
		return "ip6"
	}
	return "ip"
}

// Transport returns an *http.Transport that dials through the Guard and never uses a proxy.
// Each call returns a new Transport with its own connection pool.
func (g *Guard) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Client returns an *http.Client on a new Transport of the Guard that never follows a redirect: a
// 3xx is returned to the caller as the response. timeout bounds a whole request (0: none).
func (g *Guard) Client(timeout time.Duration) *http.Client {
	return &http.Client{Transport: g.Transport(), Timeout: timeout, CheckRedirect: NoRedirects}
}

// NoRedirects is an http.Client CheckRedirect that returns the 3xx response instead of following
// it: a redirect could lead to an address the caller never checked.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// ParseCIDRs parses allow-list entries: each is a CIDR prefix or a single address, and each may
// itself be a comma-separated list (so both a repeated flag and "a,b" work).
func ParseCIDRs(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		for _, s := range strings.Split(e, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
				continue
			}
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("allow-list entry %q: not a CIDR prefix or an IP address", s)
			}
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	return out, nil
}

// parseLegacyIPv4 reads the inet_aton forms of an IPv4 address that netip rejects: one to four
// parts, each decimal, octal (leading 0) or hexadecimal (0x), the last filling the remaining
// bytes ("127.1", "2130706433", "0x7f000001", "0177.0.0.1").
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		if p == "" {
			return netip.Addr{}, false
		}
		base, digits := 10, p
		switch {
		case strings.HasPrefix(p, "0x"):
			base, digits = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		if digits == "" && base == 16 {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*uint(i))
	}
	last := vals[len(vals)-1]
	if rest := uint(32 - 8*(len(vals)-1)); rest < 32 && last >= 1<<rest {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
