package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// seedLiveQueryID is the live query id of seed 002's payload example.
const seedLiveQueryID = "LVQCJcMTCrz86gs8UteKroy34"

// TestLiveQuerySeed002 runs seed 002's live-query example against the real binary: a live query
// over entities ("all sites") whose result, when a site is added, reaches the stream filtering
// on the query's source as exactly the seed's payload; an update that leaves the result as it
// was sends nothing, and neither does a restart; the next change after it is sent.
func TestLiveQuerySeed002(t *testing.T) {
	t.Parallel()
	apiAddr, natsAddr := freeAddr(t), freeAddr(t)
	in := startAllInOne(t, options{apiAddr: apiAddr, natsAddr: natsAddr})
	tok := in.token("p1")
	rc := newReceiver(t, nil)
	postEntities(t, in, tok, `[{"id":"SITEA2yCZ58ZpJsE7hH3Sj52CP","type":"site","name":"OG Site"},
		{"id":"SITETeZNmbxTZKbN6ArdANbyvX","type":"site","name":"New Site","address":"1 Main St"}]`)
	code, out := in.call("POST", "/streaming/v1/partitions/p1/live-queries", tok, map[string]any{"id": seedLiveQueryID, "name": "All sites",
		"query": `{"sites": entities.filter(e, e.type == "site").map(e, {"id": e.id, "name": e.name})}`})
	if code != http.StatusCreated {
		t.Fatalf("create live query: %d %s", code, out)
	}
	waitLastResult(t, in, tok, `{"sites":[{"id":"SITEA2yCZ58ZpJsE7hH3Sj52CP","name":"OG Site"},{"id":"SITETeZNmbxTZKbN6ArdANbyvX","name":"New Site"}]}`)

	code, out = in.call("POST", "/streaming/v1/partitions/p1/streams?type=event-stream", tok, map[string]any{
		"webhookUrl": rc.URL + "/live", "format": "timeseries",
		"filter": "@.source == '" + proto.LiveQuerySource("p1", seedLiveQueryID) + "'"})
	if code != http.StatusCreated {
		t.Fatalf("create stream: %d %s", code, out)
	}
	var s streamResp
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	in.waitEffective(s.ID)

	nc := in.connect()
	publishEntity(t, nc, "p1", "site", `{"id":"SITEK8qWoMJddAgv9SCwJtoYfx","type":"site","name":"New New Site"}`)
	got := rc.waitFor(t, 1, 30*time.Second)
	raw, err := os.ReadFile(filepath.Join("testdata", "seed002_livequery.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := json.Compact(&want, raw); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0].Body, want.Bytes()) || got[0].Header.Get("Content-Type") != "application/json" {
		t.Fatalf("webhook body %s (%s)\nwant seed 002's %s", got[0].Body, got[0].Header.Get("Content-Type"), want.Bytes())
	}

	// Unchanged results: a field the query does not read, an entity of another type.
	postEntities(t, in, tok, `{"id":"SITETeZNmbxTZKbN6ArdANbyvX","type":"site","name":"New Site","address":"2 Main St"}`)
	publishEntity(t, nc, "p1", "device", `{"id":"DEV1","type":"device","siteId":"SITEA2yCZ58ZpJsE7hH3Sj52CP"}`)
	waitLiveSettled(t, in)
	if n := liveEvents(t, in); n != 1 {
		t.Fatalf("%d live query events after unchanged results, want 1", n)
	}

	// Errors and the list, and every answer so far, against the OpenAPI document.
	if code, out := in.call("POST", "/streaming/v1/partitions/p1/live-queries", tok, map[string]any{"query": "sites.size()"}); code != http.StatusBadRequest ||
		!bytes.Contains(out, []byte(`undeclared reference to 'sites'`)) {
		t.Fatalf("bad query: %d %s", code, out)
	}
	if code, out := in.call("POST", "/ingest/v1/partitions/p1/entities", tok, `{"id":"a.b","type":"site"}`); code != http.StatusBadRequest {
		t.Fatalf("bad entity: %d %s", code, out)
	}
	if code, out := in.call("GET", "/streaming/v1/partitions/p1/live-queries", tok, nil); code != http.StatusOK || !bytes.Contains(out, []byte(seedLiveQueryID)) {
		t.Fatalf("list: %d %s", code, out)
	}
	checkOpenAPI(t, in)

	// A restart keeps the state: nothing is sent until the result changes again.
	in.procs[0].stop(t)
	in = startAllInOne(t, options{data: in.data, apiAddr: apiAddr, natsAddr: natsAddr})
	nc = in.connect()
	publishEntity(t, nc, "p1", "device", `{"id":"DEV2","type":"device"}`)
	waitLiveSettled(t, in)
	if n := liveEvents(t, in); n != 1 || len(rc.requests()) != 1 {
		t.Fatalf("after a restart: %d live query events, %d webhooks; want 1 and 1", n, len(rc.requests()))
	}
	publishEntity(t, nc, "p1", "site", `{"id":"SITE4","type":"site","name":"Fourth"}`)
	got = rc.waitFor(t, 2, 30*time.Second)
	wantNext := `{"lastResult":{"sites":[{"id":"SITEA2yCZ58ZpJsE7hH3Sj52CP","name":"OG Site"},{"id":"SITETeZNmbxTZKbN6ArdANbyvX","name":"New Site"},` +
		`{"id":"SITEK8qWoMJddAgv9SCwJtoYfx","name":"New New Site"},{"id":"SITE4","name":"Fourth"}]},"liveQueryId":"` + seedLiveQueryID + `"}`
	if string(got[1].Body) != wantNext {
		t.Fatalf("after the restart: %s\nwant %s", got[1].Body, wantNext)
	}
	if code, out := in.call("DELETE", "/streaming/v1/partitions/p1/live-queries/"+seedLiveQueryID, tok, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", code, out)
	}
	if code, _ := in.call("GET", "/streaming/v1/partitions/p1/live-queries/"+seedLiveQueryID, tok, nil); code != http.StatusNotFound {
		t.Fatalf("deleted query: %d", code)
	}
	checkOpenAPI(t, in)
}

// postEntities stores entity documents over HTTP ingest.
func postEntities(t *testing.T, in *instance, tok, body string) {
	t.Helper()
	code, out := in.call("POST", "/ingest/v1/partitions/p1/entities", tok, body)
	if code != http.StatusAccepted {
		t.Fatalf("post entities: %d %s", code, out)
	}
}

// publishEntity publishes an entity document on NATS and waits for the JetStream ack.
func publishEntity(t *testing.T, nc *nats.Conn, partition, typ, doc string) {
	t.Helper()
	msg, err := nc.Request(proto.IngestEntitySubject(partition, typ), []byte(doc), 5*time.Second)
	if err != nil || !bytes.Contains(msg.Data, []byte(`"seq"`)) {
		t.Fatalf("publish entity: %v %v", msg, err)
	}
}

// waitLastResult waits until the live query shows result as its last result.
func waitLastResult(t *testing.T, in *instance, tok, result string) {
	t.Helper()
	checkFor(t, 20*time.Second, func() error {
		code, out := in.call("GET", "/streaming/v1/partitions/p1/live-queries/"+seedLiveQueryID, tok, nil)
		var q struct{ LastResult json.RawMessage }
		if code != http.StatusOK || json.Unmarshal(out, &q) != nil || string(q.LastResult) != result {
			return fmt.Errorf("live query: %d %s", code, out)
		}
		return nil
	})
}

// waitLiveSettled waits until ingest and the live-query evaluator have handled every input
// (the evaluator acknowledges only after it has evaluated and stored what it sends).
func waitLiveSettled(t *testing.T, in *instance) {
	t.Helper()
	js := jsOf(t, in)
	checkFor(t, 20*time.Second, func() error {
		for _, c := range [][2]string{{proto.StreamIngest, "ingest"}, {proto.StreamEvents, "livequery"}} {
			cons, err := js.Consumer(context.Background(), c[0], c[1])
			if err != nil {
				return err
			}
			info, err := cons.Info(context.Background())
			if err != nil {
				return err
			}
			if info.NumPending != 0 || info.NumAckPending != 0 {
				return fmt.Errorf("%s: %d pending, %d unacknowledged", c[1], info.NumPending, info.NumAckPending)
			}
		}
		return nil
	})
}

// liveEvents counts the live query's events in EVENTS.
func liveEvents(t *testing.T, in *instance) uint64 {
	t.Helper()
	st, err := jsOf(t, in).Stream(context.Background(), proto.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(proto.EventSubject("p1", proto.EventTypeLiveQuery, seedLiveQueryID)))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[proto.EventSubject("p1", proto.EventTypeLiveQuery, seedLiveQueryID)]
}

func jsOf(t *testing.T, in *instance) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(in.connect())
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestLiveQuerySplit: with the services as separate processes the API stores the query and the
// matcher process evaluates it.
func TestLiveQuerySplit(t *testing.T) {
	t.Parallel()
	in := startSplit(t, "0.001")
	tok := in.token("p1")
	rc := newReceiver(t, nil)
	nc := in.connect()
	publishEntity(t, nc, "p1", "site", `{"id":"S1","type":"site","name":"one"}`)
	code, out := in.call("POST", "/streaming/v1/partitions/p1/live-queries", tok, map[string]any{"id": seedLiveQueryID,
		"query": `entities.filter(e, e.type == "site").map(e, e.name)`})
	if code != http.StatusCreated {
		t.Fatalf("create live query: %d %s", code, out)
	}
	waitLastResult(t, in, tok, `["one"]`)
	code, out = in.call("POST", "/streaming/v1/partitions/p1/streams?type=event-stream", tok, map[string]any{
		"webhookUrl": rc.URL, "format": "timeseries", "filter": "@.source == '" + proto.LiveQuerySource("p1", seedLiveQueryID) + "'"})
	if code != http.StatusCreated {
		t.Fatalf("create stream: %d %s", code, out)
	}
	var s streamResp
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	in.waitEffective(s.ID)
	publishEntity(t, nc, "p1", "site", `{"id":"S2","type":"site","name":"two"}`)
	got := rc.waitFor(t, 1, 30*time.Second)
	if want := `{"lastResult":["one","two"],"liveQueryId":"` + seedLiveQueryID + `"}`; string(got[0].Body) != want {
		t.Fatalf("webhook %s, want %s", got[0].Body, want)
	}
}

// TestSeed002LiveQueryFilter is seed 002's live-query subscription end to end: the partition's
// live-query source set to the seed's (//com.mapped/orgs/{org}/liveQueries/{id}), the live query
// created with GraphQL under the seed's id, the seed's createWebhookTarget request (its filter
// verbatim, its malformed targetUri replaced by a receiver) and a STRUCTURED target with the same
// filter: a new site reaches the first as the seed's plain payload and the second as a
// CloudEvent with the seed's source, the partition's type and org id.
func TestSeed002LiveQueryFilter(t *testing.T) {
	t.Parallel()
	const org, lvq = "ORG8Si1dkzGEYZgxrR4ZYAbCD", "LVQAERav1iu5vkp6Qhkmf1234"
	in := startAllInOne(t, options{})
	tok := in.token(org)
	rc := newReceiver(t, nil)
	nc := in.connect()
	seed002Identity(t, in, org, map[string]any{"liveQuerySource": "//com.mapped/orgs/{org}/liveQueries/{liveQueryId}",
		"liveQueryType": "com.mapped.livequery.result.v1"})
	publishEntity(t, nc, org, "site", `{"id":"SITEA2yCZ58ZpJsE7hH3Sj52CP","type":"site","name":"OG Site"}`)
	g := gql(t, in, tok, `mutation { createLiveQuery(input: {liveQuery: {id: "`+lvq+`", name: "All sites",
		query: "{'sites': entities.filter(e, e.type == 'site').map(e, {'id': e.id, 'name': e.name})}"}}) { liveQuery { id } } }`)
	if len(g.Errors) > 0 {
		t.Fatalf("createLiveQuery: %+v", g.Errors)
	}
	checkFor(t, 20*time.Second, func() error {
		g := gql(t, in, tok, `{ liveQuery(id: "`+lvq+`") { lastResult } }`)
		if q, _ := g.Data["liveQuery"].(map[string]any); q == nil || q["lastResult"] == nil {
			return fmt.Errorf("not evaluated yet: %+v", g)
		}
		return nil
	})
	create := strings.Replace(seed002Request(t, "create.graphql"), "https://example..com/d123456abcde", rc.URL+"/plain", 1)
	if g := gql(t, in, tok, create); len(g.Errors) > 0 {
		t.Fatalf("the seed's create: %+v", g.Errors)
	}
	filter := "@.source == '//com.mapped/orgs/" + org + "/liveQueries/" + lvq + "'"
	seed002Target(t, in, tok, filter, rc.URL+"/structured", "contentMode: {value: STRUCTURED}")
	in.waitEffective("")
	waitBucketWatched(t, in, proto.BucketPartitions)

	publishEntity(t, nc, org, "site", `{"id":"SITETeZNmbxTZKbN6ArdANbyvX","type":"site","name":"New Site"}`)
	got := map[string][]byte{}
	for _, r := range rc.waitFor(t, 2, 30*time.Second) {
		got[r.Path] = r.Body
	}
	want := `{"lastResult":{"sites":[{"id":"SITEA2yCZ58ZpJsE7hH3Sj52CP","name":"OG Site"},{"id":"SITETeZNmbxTZKbN6ArdANbyvX","name":"New Site"}]},"liveQueryId":"` + lvq + `"}`
	if string(got["/plain"]) != want {
		t.Fatalf("plain: %s\nwant %s", got["/plain"], want)
	}
	var ce map[string]any
	if err := json.Unmarshal(got["/structured"], &ce); err != nil {
		t.Fatalf("structured %s: %v", got["/structured"], err)
	}
	data, _ := json.Marshal(ce["data"])
	if ce["source"] != "//com.mapped/orgs/"+org+"/liveQueries/"+lvq || ce["type"] != "com.mapped.livequery.result.v1" ||
		ce["orgid"] != org || ce["specversion"] != "1.0" || string(data) != want {
		t.Fatalf("structured: %s", got["/structured"])
	}
}
