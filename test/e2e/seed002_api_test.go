package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// gqlAnswer is a GraphQL answer.
type gqlAnswer struct {
	Data   map[string]any `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// field is the field the answer's first error names ("" without errors).
func (g gqlAnswer) field() string {
	if len(g.Errors) == 0 {
		return ""
	}
	f, _ := g.Errors[0].Extensions["field"].(string)
	return f
}

func seed002Request(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "seed002", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func gql(t *testing.T, in *instance, tok, query string) gqlAnswer {
	t.Helper()
	code, out := in.call("POST", "/graphql", tok, map[string]any{"query": query})
	var g gqlAnswer
	if err := json.Unmarshal(out, &g); code != 200 || err != nil {
		t.Fatalf("graphql: %d %s", code, out)
	}
	return g
}

// TestSeed002 sends seed 002's four GraphQL requests as written, then with what the seed leaves
// to the reader replaced: its malformed targetUri (https://example..com/…, refused naming
// httpTarget.targetUri) by a receiver on 127.0.0.1 (--dev), its example ids by the created
// target's. Each answer holds exactly the fields selected, with the values sent.
func TestSeed002(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	tok := in.token("ORG8Si1dkzGEYZgxrR4ZYAbCD")
	rc := newReceiver(t, nil)
	create := seed002Request(t, "create.graphql")
	if g := gql(t, in, tok, create); g.field() != "httpTarget.targetUri" || g.Data != nil {
		t.Fatalf("the seed's malformed targetUri: %+v", g)
	}
	uri := rc.URL + "/d123456abcde"
	g := gql(t, in, tok, strings.Replace(create, "https://example..com/d123456abcde", uri, 1))
	target, _ := g.Data["createWebhookTarget"].(map[string]any)["target"].(map[string]any)
	id, _ := target["id"].(string)
	if len(g.Errors) > 0 || !strings.HasPrefix(id, "WHSUB") || len(id) != 27 {
		t.Fatalf("create: %+v", g)
	}
	filter := map[string]any{"jsonExpressionFilter": map[string]any{
		"jsonPathExpression": "@.source == '//com.mapped/orgs/ORG8Si1dkzGEYZgxrR4ZYAbCD/liveQueries/LVQAERav1iu5vkp6Qhkmf1234'"}}
	http := map[string]any{"auth": map[string]any{"noAuth": true}, "method": "POST", "targetUri": uri}
	wantExactly(t, "create", target, map[string]any{"id": id, "name": "Live Query Subscription", "eventFilters": filter,
		"httpTarget": http, "maxRetry": 10, "enabled": true})

	g = gql(t, in, tok, seed002Request(t, "list.graphql"))
	list, _ := g.Data["webhookTargets"].([]any)
	if len(list) != 1 {
		t.Fatalf("list: %+v", g)
	}
	wantExactly(t, "list", list[0].(map[string]any), map[string]any{"id": id, "name": "Live Query Subscription",
		"httpTarget": http, "eventFilters": filter})

	update := seed002Request(t, "update.graphql")
	if g := gql(t, in, tok, update); g.field() != "id" {
		t.Fatalf("update of the seed's id, which does not exist here: %+v", g)
	}
	g = gql(t, in, tok, strings.Replace(update, "WHSUB5nS9Ng7P2NCWZgT551aiCG", id, 1))
	wantExactly(t, "update", g.Data["updateWebhookTarget"].(map[string]any)["target"].(map[string]any),
		map[string]any{"id": id, "name": "Live Query Subscription", "contentMode": "STRUCTURED"})
	nativeID := seed002NativeID(t, in, tok, id)

	del := seed002Request(t, "delete.graphql")
	if g := gql(t, in, tok, del); g.field() != "id" {
		t.Fatalf("delete of the seed's id: %+v", g)
	}
	g = gql(t, in, tok, strings.Replace(del, "WHSUBMgoLD3fHY329pKANvdAb12", id, 1))
	wantExactly(t, "delete", g.Data["deleteWebhookTarget"].(map[string]any), map[string]any{"_": true})
	if code, out := in.call("GET", "/streaming/v1/partitions/ORG8Si1dkzGEYZgxrR4ZYAbCD/streams/"+nativeID, tok, nil); code != 404 {
		t.Fatalf("native get after delete: %d %s", code, out)
	}
	checkOpenAPI(t, in)
}

// seed002NativeID finds the target in the native API: it is a stream there, its filter and
// format those of the target.
func seed002NativeID(t *testing.T, in *instance, tok, id string) string {
	t.Helper()
	code, out := in.call("GET", "/streaming/v1/partitions/ORG8Si1dkzGEYZgxrR4ZYAbCD/streams", tok, nil)
	var l struct {
		Data []struct {
			ID         string         `json:"id"`
			Attributes map[string]any `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &l); code != 200 || err != nil || len(l.Data) != 1 {
		t.Fatalf("native list: %d %s", code, out)
	}
	a := l.Data[0].Attributes
	if a["format"] != "cloudevents" || !strings.Contains(fmt.Sprint(a["filter"]), "LVQAERav1iu5vkp6Qhkmf1234") || a["maxRetry"] != float64(10) {
		t.Fatalf("native stream of %s: %+v", id, a)
	}
	return l.Data[0].ID
}

// wantExactly fails unless got has exactly want's fields (compared as JSON).
func wantExactly(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	var g, w any
	_ = json.Unmarshal(gj, &g)
	_ = json.Unmarshal(wj, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, gj, wj)
	}
}

// TestSeed002Delivery: with the partition's source template set to seed 002's, the seed's time
// series filter expression matches and delivers the seed's plain payload; a STRUCTURED target
// delivers the seed's CloudEvent: the same keys, the same values but for id, time and the trace
// and correlation ids (which are hookstream's); a disabled target sends nothing; a partition
// without settings keeps hookstream's sources.
func TestSeed002Delivery(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	rc := newReceiver(t, nil)
	nc := in.connect()

	// The seed's time series filter, in a partition named after the seed's org.
	const org = "ORGUmvDdxfFU7UBvJ8Msx2A6J"
	tok := in.token(org)
	seed002Identity(t, in, org, map[string]any{"pointSource": "//com.mapped/org/{org}/timeseries/point/{pointId}"})
	seriesFilter := "@.source == '//com.mapped/org/ORGUmvDdxfFU7UBvJ8Msx2A6J/timeseries/point/PNTJDa8aQ5LAwfHPn5iGQemwW'"
	seed002Target(t, in, tok, seriesFilter, rc.URL+"/plain", "")
	seed002Target(t, in, tok, seriesFilter, rc.URL+"/disabled", "enabled: false")

	// The seed's STRUCTURED example: its org id, source and type, and its eventExtensions.
	const org2 = "mapped2"
	tok2 := in.token(org2)
	seed002Identity(t, in, org2, map[string]any{"orgId": "ORGFEdBM93rarcXPD3hjMAbcD",
		"pointSource": "//com.mapped/org/ORGFEdBM93rarcXPD3hjMHxnD/timeseries/point/{pointId}", "pointType": "com.mapped.timeseries.point.record.v1"})
	seed002Target(t, in, tok2, "@.source == '//com.mapped/org/ORGFEdBM93rarcXPD3hjMHxnD/timeseries/point/PNTDvmfigSEemZWpdCWatABcd'", rc.URL+"/structured",
		`contentMode: {value: STRUCTURED} eventExtensions: [{name: "myint", intValue: 1234}, {name: "mystring", stringValue: "hello world"}, {name: "mybool", boolValue: true}]`)
	waitBucketWatched(t, in, proto.BucketPartitions)

	publishReading(t, nc, org, "PNTother", map[string]any{"value": 1})
	publishReading(t, nc, org, "PNTJDa8aQ5LAwfHPn5iGQemwW", map[string]any{"value": 100, "timestamp": "2023-10-16T17:44:42.83269Z"})
	publishReading(t, nc, org2, "PNTDvmfigSEemZWpdCWatABcd", map[string]any{"value": 0, "timestamp": "2023-11-09T17:23:54.111069Z"})
	got := map[string][]byte{}
	for _, r := range rc.waitFor(t, 2, 20*time.Second) {
		got[r.Path] = r.Body
	}
	if string(got["/plain"]) != `{"pointId":"PNTJDa8aQ5LAwfHPn5iGQemwW","timestamp":"2023-10-16T17:44:42.83269Z","value":100}` {
		t.Errorf("plain payload: %s", got["/plain"])
	}
	seed002Structured(t, got["/structured"])
	// One more reading delivered after the first two: the disabled target and the other point
	// sent nothing meanwhile.
	publishReading(t, nc, org, "PNTJDa8aQ5LAwfHPn5iGQemwW", map[string]any{"value": 101})
	reqs := rc.waitFor(t, 3, 20*time.Second)
	for _, r := range reqs {
		if r.Path == "/disabled" {
			t.Errorf("the disabled target sent %s", r.Body)
		}
	}
	if len(reqs) != 3 {
		t.Errorf("%d requests, want 3", len(reqs))
	}
	seed002TestDelivery(t, in, rc, org2)
}

// seed002TestDelivery sends a test delivery of the partition's one stream: its sample reading
// has the partition's source too.
func seed002TestDelivery(t *testing.T, in *instance, rc *receiver, partition string) {
	t.Helper()
	tok := in.token(partition)
	_, out := in.call("GET", "/streaming/v1/partitions/"+partition+"/streams", tok, nil)
	var l struct{ Data []struct{ ID string } }
	if err := json.Unmarshal(out, &l); err != nil || len(l.Data) != 1 {
		t.Fatalf("list: %s", out)
	}
	n := len(rc.requests())
	if code, out := in.call("POST", "/streaming/v1/partitions/"+partition+"/streams/"+l.Data[0].ID+"/test", tok, nil); code != 200 {
		t.Fatalf("test delivery: %d %s", code, out)
	}
	reqs := rc.waitFor(t, n+1, 10*time.Second)
	var ce map[string]any
	if err := json.Unmarshal(reqs[n].Body, &ce); err != nil || ce["source"] != "//com.mapped/org/ORGFEdBM93rarcXPD3hjMHxnD/timeseries/point/sample-point" {
		t.Fatalf("test delivery body: %s", reqs[n].Body)
	}
}

// seed002Structured compares a delivered CloudEvent with seed 002's example.
func seed002Structured(t *testing.T, body []byte) {
	t.Helper()
	var want, got map[string]any
	readTestdata(t, &want, "seed002", "structured.json")
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("structured payload %s: %v", body, err)
	}
	keys := func(m map[string]any) []string {
		var k []string
		for x := range m {
			k = append(k, x)
		}
		slices.Sort(k)
		return k
	}
	if !slices.Equal(keys(got), keys(want)) {
		t.Fatalf("keys %v, want the seed's %v", keys(got), keys(want))
	}
	ours := []string{"id", "time", "traceid", "span", "spanparent", "correlationid"}
	for _, k := range ours {
		if s, _ := got[k].(string); s == "" {
			t.Errorf("%s = %v, want a non-empty string", k, got[k])
		}
		delete(got, k)
		delete(want, k)
	}
	compareFields(t, "structured", got, want)
}

// seed002Identity sets a partition's CloudEvents identity.
func seed002Identity(t *testing.T, in *instance, partition string, body map[string]any) {
	t.Helper()
	if code, out := in.call("PUT", "/streaming/v1/partitions/"+partition+"/cloudevents", in.token(partition), body); code != 200 {
		t.Fatalf("put identity: %d %s", code, out)
	}
}

// seed002Target creates a target with GraphQL and waits until the services have it.
func seed002Target(t *testing.T, in *instance, tok, filter, uri, extra string) {
	t.Helper()
	q := fmt.Sprintf(`mutation { createWebhookTarget(input: {target: {name: "t" %s
		eventFilters: {jsonExpressionFilter: {jsonPathExpression: %q}}
		httpTarget: {method: POST, targetUri: %q, auth: {noAuth: true}}}}) { target { id } } }`, extra, filter, uri)
	g := gql(t, in, tok, q)
	if len(g.Errors) > 0 {
		t.Fatalf("create: %+v", g.Errors)
	}
	in.waitEffective("")
}

// waitBucketWatched waits until every watcher of a bucket has been delivered its last value.
func waitBucketWatched(t *testing.T, in *instance, bucket string) {
	t.Helper()
	nc, err := nats.Connect(in.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, "KV_"+bucket)
		if err != nil {
			return err
		}
		last := st.CachedInfo().State.LastSeq
		infos := st.ListConsumers(ctx)
		for ci := range infos.Info() {
			if ci.Delivered.Stream < last {
				return fmt.Errorf("watcher %s at %d of %d", ci.Name, ci.Delivered.Stream, last)
			}
		}
		return infos.Err()
	})
}
