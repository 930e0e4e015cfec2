package api

import (
	"net/netip"
	"strings"
	"testing"

	"hookstream/pkg/outbound"
)

// TestURLPolicyRefusesInternalLiterals: every literal form of an internal address is a 400 on
// webhookUrl at create/update time outside --dev.
func TestURLPolicyRefusesInternalLiterals(t *testing.T) {
	p := urlPolicy{}
	for _, h := range []string{
		"127.0.0.1", "127.1", "2130706433", "0x7f000001", "0.0.0.0", "[::]", "[::1]",
		"[::ffff:169.254.169.254]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "169.254.169.254",
		"100.64.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "[fc00::1]", "[fe80::1]",
		"224.0.0.1", "localhost", "a.localhost",
	} {
		u := "https://" + h + ":8443/hook"
		err := p.check(u)
		if err == nil || err.Status != 400 || err.Field != "webhookUrl" {
			t.Errorf("check(%s) = %v, want a 400 on webhookUrl", u, err)
		}
	}
	for _, u := range []string{"https://hooks.example.com/x", "https://93.184.215.14/x", "https://[2606:4700::1111]/x"} {
		if err := p.check(u); err != nil {
			t.Errorf("check(%s) = %v, want nil", u, err)
		}
	}
	if err := p.check("http://hooks.example.com/x"); err == nil || !strings.Contains(err.Message, "https") {
		t.Errorf("plain http accepted outside --dev: %v", err)
	}
	dev := urlPolicy{AllowHTTP: true, AllowPrivate: true}
	if err := dev.check("http://127.0.0.1:9000/x"); err != nil {
		t.Errorf("--dev refused loopback: %v", err)
	}
	allow := urlPolicy{Guard: outbound.New(outbound.Config{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})}
	if err := allow.check("https://10.1.2.3/x"); err != nil {
		t.Errorf("--allow-cidr 10.0.0.0/8 refused 10.1.2.3: %v", err)
	}
	if err := allow.check("https://192.168.1.1/x"); err == nil {
		t.Error("--allow-cidr 10.0.0.0/8 accepted 192.168.1.1")
	}
}
