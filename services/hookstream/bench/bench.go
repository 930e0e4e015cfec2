// Package bench is hookstream's load tool, `hookstream bench`: it starts an all-in-one hookstream
// (or targets a running deployment) and a webhook receiver in a separate process, creates
// streams over the API, publishes readings over NATS and reports throughput, end-to-end latency,
// losses, duplicates, CPU and memory, next to the bare HTTP ceiling of the same receiver
// measured in slices interleaved with the load (probe.go).
//
// The children are executables that speak hookstream's command line: the all-in-one is this
// executable (or --bin), the receiver is this executable's ReceiverCommand, which the binary
// wires to RunReceiver.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
)

// scenario is one bench workload.
type scenario struct {
	Name string
	Desc string
	// Streams is how many streams are created; the ones beyond Points×Fanout subscribe to points
	// that never get a reading (idle).
	Streams int
	// Points is how many points readings go to, round robin; Fanout streams subscribe to each.
	Points int
	Fanout int
	// Rate is readings per second; 0 publishes as fast as JetStream accepts them, with the
	// end-to-end backlog bounded (--backlog).
	Rate int
	// Batch is readings per NATS message (a JSON array when above 1).
	Batch int
	// Fsync is the embedded server's --fsync.
	Fsync string
	// Hanging adds a stream on the same points whose endpoint never answers.
	Hanging bool
	// MemLimit, when set, runs hookstream with GOMEMLIMIT set to it (unless the environment sets
	// GOMEMLIMIT already): the README's advice for a memory budget.
	MemLimit string
	// PointsPerStream is how many point ids each stream has (default 1): its own point and
	// points that never get a reading.
	PointsPerStream int
	// Listers is how many API clients list every stream, page by page, while the load runs.
	Listers int
	// Args are added to hookstream's flags.
	Args []string
	// Restart stops hookstream after the load and starts it again on the same data, to measure
	// its idle RSS (RestartRSSMB).
	Restart bool
	// MQTT publishes the readings over MQTT (QoS 1, one connection) to the all-in-one's
	// --mqtt-listen instead of over NATS; Compare names the NATS scenario run beside it.
	MQTT    bool
	Compare string
	// Submit publishes the readings to ingest's submit subject (hookstream.submit.…), where
	// those arriving together are stored as one atomic batch, instead of INGEST's.
	Submit bool
}

var scenarios = []scenario{
	{Name: "a-max", Desc: "1 reading -> 1 stream, max rate", Streams: 1, Points: 1, Fanout: 1, Batch: 1, Fsync: "interval"},
	{Name: "b-fanout", Desc: "1 reading -> 10 streams, max rate", Streams: 10, Points: 1, Fanout: 10, Batch: 1, Fsync: "interval"},
	{Name: "c-latency", Desc: "1,000 readings/s -> 1 stream", Streams: 1, Points: 1, Fanout: 1, Rate: 1000, Batch: 1, Fsync: "interval"},
	{Name: "d-10k-streams", Desc: "10,000 streams, 100 active, max rate, GOMEMLIMIT=256MiB", Streams: 10_000, Points: 100, Fanout: 1, Batch: 1, Fsync: "interval", MemLimit: "256MiB"},
	{Name: "e-fsync-always", Desc: "(a) with --fsync always, 1 reading per NATS message", Streams: 1, Points: 1, Fanout: 1, Batch: 1, Fsync: "always"},
	{Name: "f-hanging", Desc: "1,000 readings/s -> healthy stream + hanging stream", Streams: 2, Points: 1, Fanout: 1, Rate: 1000, Batch: 1, Fsync: "interval", Hanging: true},
	{Name: "h-fsync-batch", Desc: "(a) with --fsync always, gateway batches of 50 readings", Streams: 1, Points: 1, Fanout: 1, Batch: 50, Fsync: "always",
		Compare: "l-batch"},
	{Name: "i-mqtt", Desc: "(a) over MQTT: QoS 1 publishes (paho, one connection) to --mqtt-listen", Streams: 1, Points: 1, Fanout: 1, Batch: 1, Fsync: "interval",
		MQTT: true, Compare: "a-max"},
	// j is not part of "all": it measures what spreading INGEST's stores over streams would be
	// compared with, and has no target.
	{Name: "j-fsync-points", Desc: "(e) over 64 points, a stream each", Streams: 64, Points: 64, Fanout: 1, Batch: 1, Fsync: "always"},
	// k is not part of "all": it is e through ingest's group commit (issue 29), a run more.
	{Name: "k-fsync-submit", Desc: "(e) published to the submit subject (ingest's group commit)", Streams: 1, Points: 1, Fanout: 1, Batch: 1, Fsync: "always", Submit: true},
	// l is not part of "all" by name: it is h at default durability, run beside h (Compare), so
	// that h's figure says what syncing every write costs on this machine in this run.
	{Name: "l-batch", Desc: "(h) at default durability (--fsync interval): gateway batches of 50 readings", Streams: 1, Points: 1, Fanout: 1, Batch: 50, Fsync: "interval"},
	// g is not part of "all": creating its streams takes longer than the other scenarios' runs.
	{Name: "g-big-tenant", Desc: "2,000 streams x 1,000 points in one partition, 10 active at 1,000 readings/s, 8 listers paging through every stream",
		Streams: 2000, Points: 10, Fanout: 1, Rate: 1000, Batch: 1, Fsync: "interval", PointsPerStream: 1000, Listers: 8, Restart: true,
		Args: []string{"--quota-streams", "2000", "--quota-stream-points", "2000000"}},
}

// allScenarios are the scenarios of --scenario all.
func allScenarios() []scenario {
	var out []scenario
	for _, s := range scenarios {
		if !slices.Contains([]string{"g-big-tenant", "j-fsync-points", "k-fsync-submit", "l-batch"}, s.Name) {
			out = append(out, s)
		}
	}
	return out
}

// findScenario finds a scenario by its name or the letter before its dash.
func findScenario(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.Name == name || strings.SplitN(s.Name, "-", 2)[0] == name {
			return s, true
		}
	}
	return scenario{}, false
}

// options are the flags of `hookstream bench`.
type options struct {
	Scenario     string
	Duration     time.Duration
	JSON         string
	Bin          string
	NATSURL      string
	APIURL       string
	Token        string
	Partition    string
	PID          int
	ReceiverURL  string
	WebhookBase  string
	CPUProfile   string
	BareDuration time.Duration
	BareWorkers  int
	Slice        time.Duration
	Backlog      int
	Window       int
	MaxInFlight  int
	Batch        int
	Submit       bool
	DrainTimeout time.Duration
	WarmTimeout  time.Duration
	Keep         bool
	Quiet        bool
}

func (o *options) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.Scenario, "scenario", "a-max", "scenario name (a-max, b-fanout, c-latency, d-10k-streams, e-fsync-always, f-hanging, g-big-tenant, h-fsync-batch: runs l-batch too, i-mqtt: runs a-max too, j-fsync-points, k-fsync-submit, l-batch), a comma-separated list, or all (every one but g, j, k and l; l comes with h)")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "how long each scenario publishes")
	fs.StringVar(&o.JSON, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.Bin, "bin", "", "run this hookstream binary as the all-in-one (default: this executable), e.g. to compare two builds under one measuring method")
	fs.StringVar(&o.NATSURL, "nats-url", "", "target a running deployment: its NATS URL (with --api-url and --token)")
	fs.StringVar(&o.APIURL, "api-url", "", "target a running deployment: its API base URL, e.g. http://127.0.0.1:8080")
	fs.StringVar(&o.Token, "token", "", "API token for --api-url (scopes streams:write, streams:read)")
	fs.StringVar(&o.Partition, "partition", "bench", "partition the bench streams and readings use")
	fs.IntVar(&o.PID, "pid", 0, "with --api-url: pid of the hookstream process to measure CPU and RSS of")
	fs.StringVar(&o.ReceiverURL, "receiver-url", "", "with --api-url: a running bench-receiver as this process reaches it (reset before each scenario), e.g. the compose bench-receiver's http://127.0.0.1:9001; default: one started here on 127.0.0.1")
	fs.StringVar(&o.WebhookBase, "webhook-base", "", "with --receiver-url: the receiver's base URL as the deployment reaches it, e.g. http://bench-receiver:9000 (default: --receiver-url)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the hookstream process during the measured window (with several scenarios, one file per scenario: NAME-SCENARIO.EXT)")
	fs.DurationVar(&o.BareDuration, "bare-duration", 0, "how long the bare HTTP ceiling is measured in all, in slices between the load's (0: as long as --duration)")
	fs.IntVar(&o.BareWorkers, "bare-workers", 32, "concurrent keep-alive workers of the bare HTTP measurement")
	fs.DurationVar(&o.Slice, "slice", 2*time.Second, "a max-rate scenario's load runs in slices of this length, each followed, once delivered, by its share of the bare HTTP measurement (a fixed-rate scenario's is one slice)")
	fs.IntVar(&o.Backlog, "backlog", 1000, "max-rate scenarios: most deliveries published but not yet received")
	fs.IntVar(&o.Window, "window", 256, "most NATS publishes awaiting their JetStream ack")
	fs.IntVar(&o.MaxInFlight, "max-in-flight", 0, "maxInFlight of every bench stream (0: the API default)")
	fs.IntVar(&o.Batch, "batch", 0, "readings per NATS message (0: the scenario's own)")
	fs.BoolVar(&o.Submit, "submit", false, "NATS scenarios publish to ingest's submit subject (hookstream.submit.…: publishes arriving together stored as one atomic batch) instead of INGEST's")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 60*time.Second, "how long to wait for the last deliveries after publishing stops")
	fs.DurationVar(&o.WarmTimeout, "warm-timeout", 2*time.Minute, "how long every active stream may take to deliver its first (warm-up) reading before the load starts anyway")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary data directory (logs, JetStream store)")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress lines")
}

func (o *options) validate() error {
	if o.Duration < time.Second || o.Duration > time.Hour {
		return fmt.Errorf("--duration %s: want 1s to 1h", o.Duration)
	}
	if err := o.validateTarget(); err != nil {
		return err
	}
	if (o.BareDuration != 0 && o.BareDuration < 500*time.Millisecond) || o.BareDuration > time.Hour || o.BareWorkers < 1 || o.BareWorkers > 1024 {
		return errors.New("--bare-duration must be 0 or 500ms to 1h and --bare-workers 1 to 1024")
	}
	if o.Slice < 500*time.Millisecond {
		return fmt.Errorf("--slice %s: want at least 500ms", o.Slice)
	}
	if o.Backlog < 1 || o.Window < 1 || o.Window > 65536 {
		return errors.New("--backlog must be at least 1 and --window 1 to 65536")
	}
	if o.MaxInFlight < 0 || o.MaxInFlight > 256 || o.Batch < 0 || o.Batch > 10_000 {
		return errors.New("--max-in-flight must be 0 to 256 and --batch 0 to 10000")
	}
	if o.DrainTimeout < time.Second || o.WarmTimeout < time.Second {
		return errors.New("--drain-timeout and --warm-timeout must be at least 1s")
	}
	return nil
}

// validateTarget checks the flags that say what runs hookstream: an all-in-one of its own or a
// running deployment.
func (o *options) validateTarget() error {
	if (o.APIURL == "") != (o.NATSURL == "") {
		return errors.New("--api-url and --nats-url go together")
	}
	if o.APIURL != "" && o.Token == "" {
		return errors.New("--api-url needs --token")
	}
	if o.APIURL != "" && o.Bin != "" {
		return errors.New("--bin starts an all-in-one, --api-url targets a running deployment: give one")
	}
	if o.ReceiverURL != "" && o.APIURL == "" {
		return errors.New("--receiver-url goes with --api-url (an all-in-one of the bench's own uses a receiver of its own)")
	}
	if o.WebhookBase != "" && o.ReceiverURL == "" {
		return errors.New("--webhook-base goes with --receiver-url")
	}
	return nil
}

// bare is the probe's total time: --bare-duration, or as long as the load.
func (o *options) bare() time.Duration {
	if o.BareDuration == 0 {
		return o.Duration
	}
	return o.BareDuration
}

// selected returns the scenarios --scenario names.
func (o *options) selected() ([]scenario, error) {
	out := allScenarios()
	if o.Scenario != "all" {
		var err error
		if out, err = o.named(); err != nil {
			return nil, err
		}
	}
	if o.APIURL != "" {
		// A deployment runs at its own durability, and MQTT scenarios need an all-in-one: a
		// scenario to compare with would measure nothing there.
		return out, nil
	}
	return withCompared(out), nil
}

// named returns the scenarios --scenario lists by name.
func (o *options) named() ([]scenario, error) {
	var out []scenario
	for _, name := range strings.FieldsFunc(o.Scenario, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		s, ok := findScenario(name)
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q", name)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("--scenario is empty")
	}
	return out, nil
}

// withCompared adds, before a scenario naming one to compare with, that scenario when it is not
// selected: its figure is printed beside the other's, from the same run.
func withCompared(sel []scenario) []scenario {
	var out []scenario
	for _, s := range sel {
		if c, ok := findScenario(s.Compare); ok && !slices.ContainsFunc(sel, func(x scenario) bool { return x.Name == c.Name }) &&
			!slices.ContainsFunc(out, func(x scenario) bool { return x.Name == c.Name }) {
			out = append(out, c)
		}
		out = append(out, s)
	}
	return out
}

// profilePath is where the CPU profile of sc goes: --cpuprofile, with the scenario's name added
// when several run.
func (o *options) profilePath(sc scenario, several bool) string {
	if !several || o.CPUProfile == "" {
		return o.CPUProfile
	}
	ext := filepath.Ext(o.CPUProfile)
	return strings.TrimSuffix(o.CPUProfile, ext) + "-" + sc.Name + ext
}

// Run is `hookstream bench`: it runs the scenarios the flags in args select, prints the table on
// stdout and progress on stderr, and fails when a scenario lost a reading.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	sel, err := o.selected()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	rep := &report{Machine: describeMachine(), Started: time.Now().UTC(), DurationS: o.Duration.Seconds()}
	logf := func(format string, a ...any) {
		if !o.Quiet {
			fmt.Fprintf(stderr, format+"\n", a...)
		}
	}
	logf("bench: %d scenario(s), %s each, on %d CPUs (%s), load average %.2f",
		len(sel), o.Duration, rep.Machine.NProc, rep.Machine.CPUModel, rep.Machine.LoadAvg1m)
	for _, sc := range sel {
		if o.Batch > 0 && o.Batch != sc.Batch {
			sc.Batch = o.Batch
			sc.Desc += fmt.Sprintf(" (--batch %d readings per NATS message)", o.Batch)
		}
		if o.Submit && !sc.Submit && !sc.MQTT {
			sc.Submit = true
			sc.Desc += " (--submit: to the submit subject)"
		}
		b := &bencher{o: &o, sc: sc, logf: logf, profile: o.profilePath(sc, len(sel) > 1)}
		res, err := b.run(ctx)
		if err != nil {
			return fmt.Errorf("bench %s: %w", sc.Name, err)
		}
		rep.Scenarios = append(rep.Scenarios, res)
	}
	return rep.finish(stdout, o.JSON)
}
