package signer

import (
	"testing"

	"hookstream/proto"
)

func TestSplitJournalKey(t *testing.T) {
	tests := []struct {
		name, key, partition, stream string
		ok                           bool
	}{
		{"plain", proto.StreamKey("p1", "s1") + ".b1", "p1", "s1", true},
		{"escaped partition", proto.StreamKey("a:b@c~d+e=f%g", "s1") + ".b1", "a:b@c~d+e=f%g", "s1", true},
		{"no batch id", "p1", "", "", false},
		{"not a key part", "a:b.s1.b1", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, s, ok := splitJournalKey(tc.key)
			if p != tc.partition || s != tc.stream || ok != tc.ok {
				t.Errorf("splitJournalKey(%q) = %q, %q, %v; want %q, %q, %v", tc.key, p, s, ok, tc.partition, tc.stream, tc.ok)
			}
		})
	}
}
