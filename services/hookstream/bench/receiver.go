package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hookstream/pkg/web"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// ReceiverCommand is the subcommand of the hookstream binary that runs RunReceiver (not listed in
// its usage).
const ReceiverCommand = "bench-receiver"

// The bench receiver is the webhook endpoint of `hookstream bench`, run as a separate process
// (ReceiverCommand) so that its CPU and memory are measured
// apart from hookstream's and from the load generator's. It serves:
//
//	POST /h/{n}     a healthy endpoint: records the delivery and answers 204
//	POST /hang/{n}  an endpoint that never answers (until the caller gives up or the receiver stops)
//	POST /bare      the bare-HTTP ceiling: counts the request and answers 204
//	GET  /progress  "{unique} {hang}" as plain text, cheap enough to poll every few milliseconds
//	GET  /stats     everything as JSON (receiverStats); ?counts=1 adds the per-reading counts
//	POST /reset     forget everything (a bench targeting a running receiver, --receiver-url)
//
// A reading's value is the string "{seq}-{unixNanos}" (bench readings) or "w-{…}" (warm-up
// readings, which only mark their path as reached). Latency is the receiver's wall clock at
// arrival minus the publish time carried in the value; both processes read the same clock.

// receiverStats is the receiver's report.
type receiverStats struct {
	Unique     int64   `json:"unique"`
	Duplicates int64   `json:"duplicates"`
	Bad        int64   `json:"bad"`
	Hang       int64   `json:"hang"`
	Bare       int64   `json:"bare"`
	WarmPaths  int     `json:"warm_paths"`
	LatencyN   int     `json:"latency_n"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	// Counts[seq] is how many distinct deliveries of reading seq arrived (saturating at 255).
	Counts []byte `json:"counts,omitempty"`
}

// recorder holds what the healthy endpoints received. Safe for concurrent use.
type recorder struct {
	mu        sync.Mutex
	seen      map[string]struct{} // webhook-id + "|" + value
	counts    []byte
	latencyUs []int32
	warm      map[string]struct{}
	unique    int64
	dups      int64
	bad       int64
	hang      int64
	bare      int64
}

// maxLatencySamples bounds the receiver's memory: a few minutes at tens of thousands per second.
const maxLatencySamples = 20_000_000

func newRecorder() *recorder {
	return &recorder{seen: make(map[string]struct{}, 1<<16), warm: map[string]struct{}{}}
}

// benchValue splits a bench reading value "{seq}-{unixNanos}".
func benchValue(v []byte) (seq int64, sentNs int64, ok bool) {
	a, b, found := bytes.Cut(v, []byte{'-'})
	if !found {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseInt(string(a), 10, 64)
	sentNs, err2 := strconv.ParseInt(string(b), 10, 64)
	if err1 != nil || err2 != nil || seq < 0 {
		return 0, 0, false
	}
	return seq, sentNs, true
}

// stringValue returns the contents of the body's "value" when it is a JSON string without
// escapes, which every bench value is.
func stringValue(body []byte) ([]byte, bool) {
	i := bytes.LastIndex(body, []byte(`"value":"`))
	if i < 0 {
		return nil, false
	}
	rest := body[i+len(`"value":"`):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

func (rc *recorder) record(path, id string, body []byte, at time.Time) {
	v, ok := stringValue(body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if !ok || id == "" {
		rc.bad++
		return
	}
	if bytes.HasPrefix(v, []byte("w-")) {
		rc.warm[path] = struct{}{}
		return
	}
	seq, sent, ok := benchValue(v)
	if !ok || seq > 1<<31 {
		rc.bad++
		return
	}
	key := id + "|" + string(v)
	if _, dup := rc.seen[key]; dup {
		rc.dups++
		return
	}
	rc.seen[key] = struct{}{}
	rc.unique++
	if int(seq) >= len(rc.counts) {
		rc.counts = append(rc.counts, make([]byte, int(seq)+1-len(rc.counts)+len(rc.counts)/2)...)
	}
	if rc.counts[seq] < 255 {
		rc.counts[seq]++
	}
	if len(rc.latencyUs) < maxLatencySamples {
		us := at.UnixNano() - sent
		us /= 1000
		rc.latencyUs = append(rc.latencyUs, int32(min(max(us, 0), 1<<31-1)))
	}
}

// reset forgets everything recorded: a long-running receiver (the compose bench-receiver) starts
// each scenario of a bench that targets it empty.
func (rc *recorder) reset() {
	fresh := newRecorder()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.seen, rc.counts, rc.latencyUs, rc.warm = fresh.seen, nil, nil, fresh.warm
	rc.unique, rc.dups, rc.bad, rc.hang, rc.bare = 0, 0, 0, 0, 0
}

func (rc *recorder) progress() (unique, hang int64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.unique, rc.hang
}

func (rc *recorder) stats(withCounts bool) receiverStats {
	rc.mu.Lock()
	st := receiverStats{Unique: rc.unique, Duplicates: rc.dups, Bad: rc.bad, Hang: rc.hang, Bare: rc.bare,
		WarmPaths: len(rc.warm), LatencyN: len(rc.latencyUs)}
	lat := slices.Clone(rc.latencyUs)
	if withCounts {
		st.Counts = slices.Clone(rc.counts)
	}
	rc.mu.Unlock()
	slices.Sort(lat)
	st.P50ms, st.P90ms, st.P99ms = percentileMs(lat, 0.50), percentileMs(lat, 0.90), percentileMs(lat, 0.99)
	if len(lat) > 0 {
		st.MaxMs = float64(lat[len(lat)-1]) / 1000
	}
	return st
}

// percentileMs is the nearest-rank percentile of sorted microsecond samples, in milliseconds.
func percentileMs(sorted []int32, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p*float64(len(sorted))+0.999999) - 1
	rank = min(max(rank, 0), len(sorted)-1)
	return float64(sorted[rank]) / 1000
}

func (rc *recorder) handler(stop <-chan struct{}, echo io.Writer) http.Handler {
	mux := http.NewServeMux()
	var printMu sync.Mutex
	mux.HandleFunc("POST /h/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		at := time.Now()
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if echo != nil {
			printMu.Lock()
			fmt.Fprintf(echo, "%s %s %s\n", r.URL.Path, r.Header.Get("X-Hub-Signature-256"), body)
			printMu.Unlock()
		}
		rc.record(r.URL.Path, r.Header.Get("webhook-id"), body, at)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/hang/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rc.mu.Lock()
		rc.hang++
		rc.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	mux.HandleFunc("POST /bare", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rc.mu.Lock()
		rc.bare++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		rc.reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /progress", func(w http.ResponseWriter, r *http.Request) {
		u, h := rc.progress()
		fmt.Fprintf(w, "%d %d", u, h)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rc.stats(r.URL.Query().Get("counts") == "1"))
	})
	return mux
}

// RunReceiver serves the receiver on a loopback address and prints "listening http://ADDR" on
// stdout once it accepts connections; it stops when ctx ends (SIGINT/SIGTERM) or, with
// --exit-on-stdin-eof, when stdin closes, so it never outlives the bench that started it.
// --any-addr lets it listen beyond loopback: the receiver container of docker-compose.yml,
// reached by the services over the compose network; --print writes each healthy delivery's
// path, X-Hub-Signature-256 and body to stdout (the container's log).
func RunReceiver(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(ReceiverCommand, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
	watchStdin := fs.Bool("exit-on-stdin-eof", false, "stop when stdin closes (set by the bench, so the receiver never outlives it)")
	anyAddr := fs.Bool("any-addr", false, "allow a listen address beyond loopback (a receiver container on a compose network)")
	printTo := fs.Bool("print", false, "print each delivery to /h/… (path, X-Hub-Signature-256, body) on stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := web.RequireLoopback(*addr); err != nil && !*anyAddr {
		return fmt.Errorf("bench-receiver: %w", err)
	}
	var echo io.Writer
	if *printTo {
		echo = stdout
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	srv := &http.Server{Handler: newRecorder().handler(stop, echo), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "listening http://%s\n", ln.Addr())
	stdinClosed := make(chan struct{})
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, bufio.NewReader(stdin))
			close(stdinClosed)
		}()
	}
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	case err := <-errc:
		return err
	}
	close(stop)
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
