package delivery

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// One row per rule of the parking policy: a target whose slots and queue are full is waited for
// unless parking it helps another target.
func TestDecide(t *testing.T) {
	p := DefaultParking
	ms := time.Millisecond
	for _, c := range []struct {
		name   string
		snap   Snapshot
		reason string // part of why it is parked; "" when it is waited for
	}{
		{"a fast target is always waited for", Snapshot{Attempt: 8 * ms, Slots: 16, Mixed: true, Backlog: 1e6}, ""},
		{"a saturated target alone is waited for", Snapshot{Attempt: 80 * ms, Slots: 16}, ""},
		{"a target as fast as its peers is waited for", Snapshot{Attempt: 80 * ms, Slots: 16, Peer: 3 * ms, HasPeer: true, Mixed: true}, ""},
		{"a slow target is parked", Snapshot{Attempt: 20 * ms, Slots: 1}, "on average"},
		{"a target SlowerBy times slower than its peers is parked", Snapshot{Attempt: 5 * ms, Slots: 1, Peer: 500 * time.Microsecond, HasPeer: true}, "other streams' typically 8× less"},
		{"a little slower than its peers is waited for", Snapshot{Attempt: 5 * ms, Slots: 1, Peer: ms, HasPeer: true}, ""},
		{"slower only since the peers' snapshot is waited for", Snapshot{Attempt: 5 * ms, Slots: 1, Peer: 500 * time.Microsecond, HasPeer: true, PastSlot: ms}, ""},
		{"stalled while others' attempts ended is parked after StallAmid", Snapshot{Attempt: ms, Slots: 1, Stalled: 21 * ms, OthersMoved: true, Mixed: true}, "attempts ended"},
		{"stalled for StallFactor attempts is the bound when longer", Snapshot{Attempt: 4 * ms, Slots: 1, Stalled: 30 * ms, OthersMoved: true, Mixed: true}, ""},
		{"stalled past StallFactor attempts is parked", Snapshot{Attempt: 4 * ms, Slots: 1, Stalled: 33 * ms, OthersMoved: true, Mixed: true}, "attempts ended"},
		{"stalled while others did not move waits for StallAfter", Snapshot{Attempt: ms, Slots: 1, Stalled: 50 * ms, Mixed: true}, ""},
		{"stalled for StallAfter beside others is parked", Snapshot{Attempt: ms, Slots: 1, Stalled: 100 * ms, Mixed: true}, "while other streams are active"},
		{"stalled alone is waited for up to StuckAfter", Snapshot{Attempt: ms, Slots: 1, Stalled: 400 * ms, OthersMoved: true}, ""},
		{"stuck for StuckAfter is parked even alone", Snapshot{Attempt: ms, Slots: 1, Stalled: 500 * ms}, "no slot freed for 500ms"},
		{"a backlog hidden behind it is parked", Snapshot{Attempt: 5 * ms, Slots: 1, Backlog: 2_000}, "2000 messages wait"},
		{"a smaller backlog is not", Snapshot{Attempt: 5 * ms, Slots: 1, Backlog: 1_999}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			park, why := p.Decide(c.snap)
			if park != (c.reason != "") || !strings.Contains(why, c.reason) {
				t.Errorf("Decide = %v, %q; want parked %v (%q)", park, why, c.reason != "", c.reason)
			}
			if p.Unpark(c.snap) == park {
				t.Errorf("Unpark disagrees with Decide")
			}
		})
	}
}

func TestRecheck(t *testing.T) {
	p := DefaultParking
	for _, c := range []struct {
		snap Snapshot
		want time.Duration
	}{
		{Snapshot{}, time.Millisecond},
		{Snapshot{Attempt: 5 * time.Millisecond, Slots: 1}, 5 * time.Millisecond},
		{Snapshot{Attempt: 50 * time.Millisecond, Slots: 1}, p.StallAmid / 2},
		{Snapshot{Stalled: 7 * time.Millisecond}, 7 * time.Millisecond},
	} {
		if got := p.Recheck(c.snap); got != c.want {
			t.Errorf("Recheck(%+v) = %v, want %v", c.snap, got, c.want)
		}
	}
}

func TestParkingValidate(t *testing.T) {
	if err := DefaultParking.Validate(); err != nil {
		t.Fatalf("the default is invalid: %v", err)
	}
	for name, change := range map[string]func(*ParkingConfig){
		"zero":                      func(c *ParkingConfig) { *c = ParkingConfig{} },
		"slow below fast":           func(c *ParkingConfig) { c.SlowSlot = c.FastSlot },
		"slower by 1":               func(c *ParkingConfig) { c.SlowerBy = 1 },
		"stall after above stuck":   func(c *ParkingConfig) { c.StallAfter = c.StuckAfter + 1 },
		"stall amid above stall":    func(c *ParkingConfig) { c.StallAmid = c.StallAfter + 1 },
		"no stall peers":            func(c *ParkingConfig) { c.StallPeers = 0 },
		"no unpark interval":        func(c *ParkingConfig) { c.UnparkEvery = 0 },
		"no hidden backlog":         func(c *ParkingConfig) { c.HiddenBacklog = 0 },
		"negative held inactivity":  func(c *ParkingConfig) { c.HeldInactive = -1 },
		"stall factor of nothing":   func(c *ParkingConfig) { c.StallFactor = 0 },
		"a peer window of nothing":  func(c *ParkingConfig) { c.PeerWindow = 0 },
		"fast slot of nothing":      func(c *ParkingConfig) { c.FastSlot = 0 },
		"stall amid of nothing":     func(c *ParkingConfig) { c.StallAmid = 0 },
		"stuck before stall amid":   func(c *ParkingConfig) { c.StuckAfter = c.StallAmid / 2 },
		"slower by zero (negative)": func(c *ParkingConfig) { c.SlowerBy = -8 },
	} {
		c := DefaultParking
		change(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidParking) {
			t.Errorf("%s: Validate = %v, want ErrInvalidParking", name, err)
		}
	}
	if _, err := New(Config{Conn: nil}); !errors.Is(err, ErrConfig) {
		t.Errorf("New without a connection: %v", err)
	}
}
