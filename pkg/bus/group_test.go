package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
)

// TestStageGroup runs a stage in group mode over inputs waiting before it starts and one
// published while it runs: inputs are handed over in groups of at most Batch, in order; one
// output stands for a whole group; a terminated input is rejected once and left out, a
// transiently failing one comes back alone and is then stored; everything is acknowledged.
func TestStageGroup(t *testing.T) {
	f := newStageFixture(t)
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("g%02d", i))
	}
	names = slices.Insert(names, 5, "bad")
	names = slices.Insert(names, 12, "flaky")
	f.publish(t, names...)

	var mu sync.Mutex
	var groups [][]string
	calls := map[string]int{}
	var rejected []string
	const batch = 8
	f.run(t, &bus.Stage{
		Batch: batch,
		Group: func(_ context.Context, in []bus.Input) []*nats.Msg {
			mu.Lock()
			defer mu.Unlock()
			var got, kept []string
			for i := range in {
				n := string(in[i].Msg.Data())
				got = append(got, n)
				calls[n]++
				switch {
				case n == "bad":
					in[i].Err = fmt.Errorf("%w: cannot parse %q", bus.ErrTerm, n)
				case n == "flaky" && calls[n] == 1:
					in[i].Err = errors.New("briefly unavailable")
				default:
					kept = append(kept, n)
				}
			}
			groups = append(groups, got)
			if len(kept) == 0 {
				return nil
			}
			joined := strings.Join(kept, ",")
			return []*nats.Msg{bus.NewMsg("out.grp."+kept[0], joined, []byte(joined))}
		},
		Reject: func(msg jetstream.Msg, err error) {
			mu.Lock()
			defer mu.Unlock()
			rejected = append(rejected, string(msg.Data()))
		},
	})
	f.publish(t, "late")
	want := slices.DeleteFunc(append(slices.Clone(names), "late"), func(n string) bool { return n == "bad" })
	checkFor(t, 8*time.Second, func() error {
		stored := f.outputs(t)
		var got []string
		for k := range stored {
			_, data, _ := strings.Cut(k, "=")
			got = append(got, strings.Split(data, ",")...)
		}
		slices.Sort(got)
		w := slices.Sorted(slices.Values(want))
		if !slices.Equal(got, w) {
			return fmt.Errorf("outputs hold %v, want %v", got, w)
		}
		return nil
	})
	f.settled(t)
	mu.Lock()
	defer mu.Unlock()
	for n, c := range calls {
		if want := 1 + btoi(n == "flaky"); c != want {
			t.Errorf("%s handed over %d times, want %d", n, c, want)
		}
	}
	if fmt.Sprint(rejected) != "[bad]" {
		t.Errorf("rejected %v, want [bad]", rejected)
	}
	var order []string
	largest := 0
	for _, g := range groups {
		if len(g) > batch {
			t.Errorf("group of %d inputs, Batch is %d: %v", len(g), batch, g)
		}
		largest = max(largest, len(g))
		for _, n := range g {
			if calls[n] == 1 || n == "flaky" && !slices.Contains(order, n) {
				order = append(order, n)
			}
		}
	}
	if largest < 2 {
		t.Errorf("no group held more than one input: %v", groups)
	}
	if !slices.Equal(order[:len(names)], names) {
		t.Errorf("inputs handed over in order %v, want %v", order, names)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestStageBoundsOutputsNotInputs: a stage whose inputs each have more outputs than MaxPending
// still stores every output and acknowledges every input (one input's outputs are let through
// even when they alone exceed the bound).
func TestStageBoundsOutputsNotInputs(t *testing.T) {
	f := newStageFixture(t)
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("w%02d", i))
	}
	f.publish(t, names...)
	const fan = 6
	f.run(t, &bus.Stage{MaxPending: 4, Handle: func(_ context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
		n := string(msg.Data())
		outs := make([]*nats.Msg, fan)
		for i := range outs {
			id := fmt.Sprintf("%s.%d", n, i)
			outs[i] = bus.NewMsg("out."+id, id, []byte(id))
		}
		return outs, nil
	}})
	checkFor(t, 8*time.Second, func() error {
		info, err := f.out.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs != uint64(fan*len(names)) {
			return fmt.Errorf("OUT has %d messages, want %d", info.State.Msgs, fan*len(names))
		}
		return nil
	})
	f.settled(t)
}

// TestStageMaxBytes: with MaxBytes a pull holds at most that many bytes, so a group of large
// inputs is at most as large; every input is still handled once and acknowledged.
func TestStageMaxBytes(t *testing.T) {
	f := newStageFixture(t)
	big := strings.Repeat("x", 100_000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 10 {
		if _, err := f.conn.JS.Publish(ctx, fmt.Sprintf("in.m%d", i), []byte(fmt.Sprintf("m%d:%s", i, big))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var sizes []int
	seen := map[string]int{}
	f.run(t, &bus.Stage{MaxBytes: 250_000, Group: func(_ context.Context, in []bus.Input) []*nats.Msg {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(in))
		var outs []*nats.Msg
		for _, i := range in {
			name, _, _ := strings.Cut(string(i.Msg.Data()), ":")
			seen[name]++
			outs = append(outs, bus.NewMsg("out.a."+name, name, []byte(name)))
		}
		return outs
	}})
	f.settled(t)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 10 {
		t.Errorf("handled %d distinct inputs, want 10: %v", len(seen), seen)
	}
	for n, c := range seen {
		if c != 1 {
			t.Errorf("%s handled %d times", n, c)
		}
	}
	for _, n := range sizes {
		if n > 2 {
			t.Errorf("group sizes %v: a pull of at most 250,000 bytes held %d inputs of 100,000", sizes, n)
			break
		}
	}
}
