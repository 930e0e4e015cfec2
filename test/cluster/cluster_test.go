package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// scenario is one fault: it injects it and returns once the deployment is whole again.
type scenario struct {
	name  string
	fault func(d *deployment)
}

// report is what a scenario measured.
type report struct {
	acked, delivered, lost, duplicates int
	missing                            []int64 // the readings lost
	gap                                time.Duration
	drain                              time.Duration // from the end of the load to the last delivery checked
	left                               string        // messages the pipeline held then (inFlight)
	took                               time.Duration // the whole scenario, drain included
}

func (r report) String() string {
	return fmt.Sprintf("acknowledged %d, delivered %d, lost %d, duplicates %d, longest delivery gap %s, drained in %s, %s left in the pipeline (took %s)",
		r.acked, r.delivered, r.lost, r.duplicates, r.gap.Round(100*time.Millisecond), r.drain.Round(time.Second), r.left, r.took.Round(time.Second))
}

// TestCluster runs every fault scenario on one compose deployment under a steady load published
// to all three NATS nodes; each must lose no acknowledged reading.
func TestCluster(t *testing.T) {
	began := time.Now()
	d := startDeployment(t)
	l := newLoader(t, d.nats)
	r := &receiver{t: t, base: d.recv}
	createStreams(t, d.api, d.token("p1"))
	l.warmUp(r)
	t.Logf("deployment built, healthy and delivering after %s", time.Since(began).Round(time.Second))

	scenarios := []scenario{
		{"a-kill-nats-node", func(d *deployment) {
			id := d.containers("nats-2")[0]
			d.docker("kill", id)
			time.Sleep(5 * time.Second)
			d.docker("start", id)
			d.waitHealthy(2 * time.Minute)
		}},
		{"d-kill-delivery-replica", func(d *deployment) {
			id := d.containers("delivery")[0]
			d.docker("kill", id)
			time.Sleep(5 * time.Second)
			d.docker("start", id)
			d.waitHealthy(2 * time.Minute)
		}},
		{"c-rolling-restart", func(d *deployment) {
			for _, svc := range []string{"ingest", "matcher", "signer", "delivery", "api-1", "api-2"} {
				for _, id := range d.containers(svc) {
					d.docker("restart", "-t", "10", id)
					d.waitContainer(id, 2*time.Minute)
				}
			}
		}},
		{"b-partition-nats-node", func(d *deployment) {
			id, net := d.containers("nats-3")[0], d.network()
			d.docker("network", "disconnect", net, id)
			time.Sleep(20 * time.Second)
			d.docker("network", "connect", "--alias", "nats-3", net, id)
			d.waitHealthy(2 * time.Minute)
		}},
		{"e-stop-start-all", func(d *deployment) {
			d.run(3*time.Minute, append([]string{"stop", "-t", "20"}, services...)...)
			d.run(3*time.Minute, append([]string{"start"}, services...)...)
			d.waitHealthy(3 * time.Minute)
		}},
	}
	var lines []string
	for _, sc := range pick(t, scenarios, os.Getenv("HOOKSTREAM_CLUSTER_SCENARIOS")) {
		rep := runScenario(t, d, l, r, sc)
		line := fmt.Sprintf("%-24s %s", sc.name, rep)
		t.Log(line)
		lines = append(lines, line)
		if rep.lost > 0 {
			t.Errorf("%s: %d acknowledged readings lost; where the first ones got to:\n%s", sc.name, rep.lost, l.traceLost(rep.missing))
		}
	}
	t.Logf("cluster fault scenarios:\n%s", strings.Join(lines, "\n"))
}

// pick is every scenario when names is empty, else the ones it names (comma-separated, by name or
// by the letter before the dash), in its order and as often as named: "e,e,e" repeats the
// whole-deployment restart three times on one deployment.
func pick(t *testing.T, all []scenario, names string) []scenario {
	if names == "" {
		return all
	}
	var out []scenario
	for _, n := range strings.Split(names, ",") {
		found := false
		for _, sc := range all {
			if sc.name == n || strings.HasPrefix(sc.name, n+"-") {
				out, found = append(out, sc), true
				break
			}
		}
		if !found {
			t.Fatalf("HOOKSTREAM_CLUSTER_SCENARIOS: no scenario %q", n)
		}
	}
	return out
}

// runScenario loads the deployment for a few seconds, injects the fault, keeps the load on a few
// seconds after the deployment is whole again, then waits until every acknowledged reading is
// delivered (see drainFor) and reports.
func runScenario(t *testing.T, d *deployment, l *loader, r *receiver, sc scenario) (rep report) {
	t.Helper()
	began := time.Now()
	defer func() { rep.took = time.Since(began) }()
	stopGaps := make(chan struct{})
	gaps := r.watchGaps(stopGaps)
	stop := l.start()
	time.Sleep(3 * time.Second)
	sc.fault(d)
	time.Sleep(5 * time.Second)
	acked := stop()
	close(stopGaps)
	rep = report{acked: len(acked), gap: <-gaps}
	dr := &drainer{t: t, l: l, from: time.Now()}
	for {
		rep.count(acked, r.stats(true).Counts)
		if rep.lost == 0 || !dr.waiting() {
			break
		}
		time.Sleep(time.Second)
	}
	rep.drain = time.Since(dr.from)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := l.inFlight(ctx); err == nil {
		rep.left = fmt.Sprint(n)
	} else {
		rep.left = "unknown (" + err.Error() + ")"
	}
	return rep
}

// Draining: every acknowledged reading gets drainFor after the scenario to be delivered, and up
// to drainMax while the pipeline still holds work (a whole-deployment restart under a loaded
// machine waits out AckWaits of 10-30 s per stage and retries backed off to tens of seconds);
// only a reading not delivered once the pipeline is empty, or after drainMax, counts as lost.
const (
	drainFor = 2 * time.Minute
	drainMax = 5 * time.Minute
)

// drainer decides how long a scenario waits for its deliveries, from the end of its load.
type drainer struct {
	t      *testing.T
	l      *loader
	from   time.Time
	logged time.Time
}

// waiting reports whether to keep waiting; past drainFor it logs what the pipeline holds every
// 30 s.
func (dr *drainer) waiting() bool {
	waited := time.Since(dr.from)
	if waited < drainFor {
		return true
	}
	if waited > drainMax {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := dr.l.inFlight(ctx)
	if time.Since(dr.logged) >= 30*time.Second {
		dr.logged = time.Now()
		dr.t.Logf("after %s: %d messages still in the pipeline (%v)", waited.Round(time.Second), n, err)
	}
	return err != nil || n > 0
}

// count sets lost, delivered, duplicates and missing from the receiver's counts per reading.
func (rep *report) count(acked []int64, counts []byte) {
	rep.lost, rep.delivered, rep.duplicates, rep.missing = 0, 0, 0, nil
	for _, seq := range acked {
		switch c := count(counts, seq); {
		case c == 0:
			rep.lost++
			rep.missing = append(rep.missing, seq)
		default:
			rep.delivered++
			rep.duplicates += c - 1
		}
	}
}

func count(counts []byte, seq int64) int {
	if seq < 0 || seq >= int64(len(counts)) {
		return 0
	}
	return int(counts[seq])
}
