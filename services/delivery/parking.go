package delivery

import (
	"errors"
	"fmt"
	"time"
)

// Parking is the policy that keeps a slow, failing or hanging endpoint from holding back the
// others. Route hands each delivery from the shared consumer to its target; a target whose
// slots and queue are full either is waited for (route holds the shared consumer back until
// the target has room) or is parked: its deliveries are moved to its held subject and delivered
// from there by a consumer of its own, at the cost of one more write each. The policy is the
// pure function ParkingConfig.Decide over a Snapshot of the target; the mechanism that applies
// it (route, lanes, held consumers, the janitor) is route.go and target.go.

// ParkingConfig holds the parking policy's bounds. The zero value is not valid; start from
// DefaultParking.
type ParkingConfig struct {
	// FastSlot: a target whose slots free this fast on average is always waited for.
	FastSlot time.Duration
	// SlowSlot: a target whose slots take this long or more to free on average is parked.
	SlowSlot time.Duration
	// SlowerBy: a target whose slots free this many times slower than the other active targets'
	// typically (their median) is parked.
	SlowerBy int
	// PeerWindow: the targets route handed a delivery to within this window are the active ones.
	PeerWindow time.Duration
	// HiddenBacklog: with this many messages waiting in the shared consumer behind a target
	// (other targets' may be among them), the target is parked.
	HiddenBacklog uint64
	// StuckAfter: a target none of whose slots frees for this long is parked, even alone, and
	// route never waits longer than this for one delivery.
	StuckAfter time.Duration
	// StallAfter: while other targets may be waiting behind it, a target none of whose slots has
	// freed for this long is parked (its endpoint hangs; the average learns it only when the
	// attempts time out). It is above the pauses of a loaded 2-core machine.
	StallAfter time.Duration
	// StallAmid and StallFactor: a target none of whose slots has freed for StallAmid, and for
	// StallFactor times its average attempt, while other targets' attempts went on (StallPeers
	// of them ended, or all that were running did), is parked: a pause of the machine holds
	// every target's attempts alike, a hanging endpoint only its own.
	StallAmid   time.Duration
	StallFactor int
	StallPeers  uint64
	// UnparkEvery is how often the janitor looks at parked targets.
	UnparkEvery time.Duration
	// HeldInactive is how long the consumer of an unparked target's held subject outlives its
	// last pull before the server removes it.
	HeldInactive time.Duration
}

// DefaultParking is the policy hookstream runs with.
var DefaultParking = ParkingConfig{
	FastSlot: time.Millisecond, SlowSlot: 20 * time.Millisecond, SlowerBy: 8, PeerWindow: 5 * time.Second,
	HiddenBacklog: 2_000, StuckAfter: 500 * time.Millisecond, StallAfter: 100 * time.Millisecond,
	StallAmid: 20 * time.Millisecond, StallFactor: 8, StallPeers: 8,
	UnparkEvery: 2 * time.Second, HeldInactive: 5 * time.Minute,
}

// ErrInvalidParking wraps every error of ParkingConfig.Validate.
var ErrInvalidParking = errors.New("invalid parking config")

// Validate reports the first bound that is out of range.
func (c ParkingConfig) Validate() error {
	switch {
	case c.FastSlot <= 0 || c.SlowSlot <= c.FastSlot:
		return fmt.Errorf("%w: need 0 < FastSlot (%v) < SlowSlot (%v)", ErrInvalidParking, c.FastSlot, c.SlowSlot)
	case c.SlowerBy < 2:
		return fmt.Errorf("%w: SlowerBy %d is below 2", ErrInvalidParking, c.SlowerBy)
	case c.StallAmid <= 0 || c.StallAfter < c.StallAmid || c.StuckAfter < c.StallAfter:
		return fmt.Errorf("%w: need 0 < StallAmid (%v) <= StallAfter (%v) <= StuckAfter (%v)", ErrInvalidParking, c.StallAmid, c.StallAfter, c.StuckAfter)
	case c.StallFactor < 1 || c.StallPeers < 1:
		return fmt.Errorf("%w: StallFactor %d and StallPeers %d must be at least 1", ErrInvalidParking, c.StallFactor, c.StallPeers)
	case c.PeerWindow <= 0 || c.UnparkEvery <= 0 || c.HeldInactive <= 0 || c.HiddenBacklog == 0:
		return fmt.Errorf("%w: PeerWindow, UnparkEvery, HeldInactive and HiddenBacklog must be positive", ErrInvalidParking)
	}
	return nil
}

// Snapshot is what the policy knows of one target at one moment.
type Snapshot struct {
	// Attempt is the moving average of the target's attempts (0: none finished yet), Slots its
	// maxInFlight; Attempt/Slots is how long one slot is expected to take to free.
	Attempt time.Duration
	Slots   int
	// Stalled is how long every slot has been taken with none freeing (0 while one is free).
	Stalled time.Duration
	// Peer is the typical (median) slot of the other targets active within PeerWindow, as the
	// janitor last saw them, and HasPeer whether there are any; PastSlot is the target's own
	// slot at that snapshot (0: it was not in it).
	Peer     time.Duration
	HasPeer  bool
	PastSlot time.Duration
	// OthersMoved: other targets' attempts went on while this one stalled. Mixed: other
	// targets' deliveries may be waiting behind this one's in the shared consumer.
	OthersMoved bool
	Mixed       bool
	// Backlog is the number of messages waiting in the shared consumer.
	Backlog uint64
}

// slot is how long one of the target's slots is expected to take to free.
func (s Snapshot) slot() time.Duration {
	if s.Slots <= 0 {
		return s.Attempt
	}
	return s.Attempt / time.Duration(s.Slots)
}

// Decide says whether a target whose slots and queue are full is to be parked now, and why; ""
// means route waits for it (and asks again soon, see Recheck).
func (c ParkingConfig) Decide(s Snapshot) (park bool, reason string) {
	slot := s.slot()
	if eff := max(slot, s.Stalled); eff >= c.StuckAfter {
		return true, fmt.Sprintf("no slot freed for %v (average %v)", s.Stalled.Round(time.Millisecond), slot)
	} else if eff <= c.FastSlot {
		return false, ""
	}
	if why := c.helps(s, slot); why != "" {
		return true, why
	}
	return false, ""
}

// helps says why parking the target helps other targets, or "" when it does not.
func (c ParkingConfig) helps(s Snapshot, slot time.Duration) string {
	switch {
	case slot >= c.SlowSlot:
		return fmt.Sprintf("slots take %v on average", slot)
	case c.slowerThanPeers(s, slot):
		return fmt.Sprintf("slots take %v on average, other streams' typically %d× less", slot, c.SlowerBy)
	case s.Stalled >= max(c.StallAmid, time.Duration(c.StallFactor)*s.Attempt) && s.OthersMoved && s.Mixed:
		return fmt.Sprintf("no slot freed for %v (average %v) while other streams' attempts ended", s.Stalled.Round(time.Millisecond), slot)
	case s.Stalled >= c.StallAfter && s.Mixed:
		return fmt.Sprintf("no slot freed for %v (average %v) while other streams are active", s.Stalled.Round(time.Millisecond), slot)
	case s.Backlog >= c.HiddenBacklog:
		return fmt.Sprintf("%d messages wait in the shared consumer", s.Backlog)
	}
	return ""
}

// slowerThanPeers reports whether the other active targets are typically SlowerBy times faster.
// The target's own slot counts as the lesser of now and the janitor's snapshot: a burst of slow
// attempts since (the receiver paused for all of them) does not make it look slower.
func (c ParkingConfig) slowerThanPeers(s Snapshot, slot time.Duration) bool {
	if s.PastSlot > 0 {
		slot = min(slot, s.PastSlot)
	}
	return s.HasPeer && s.Peer*time.Duration(c.SlowerBy) < slot
}

// Recheck is how long route waits for room in a full queue before it asks Decide again: at
// most StallAmid/2, so that a stall is seen soon after it reaches StallAmid.
func (c ParkingConfig) Recheck(s Snapshot) time.Duration {
	return min(max(s.slot(), s.Stalled, time.Millisecond), c.StallAmid/2)
}

// Unpark reports whether a parked target would now be waited for rather than parked, so that
// its arrivals stop being moved to its held subject.
func (c ParkingConfig) Unpark(s Snapshot) bool {
	park, _ := c.Decide(s)
	return !park
}
