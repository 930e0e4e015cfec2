package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// usageResp is the answer of GET …/usage.
type usageResp struct {
	Partition    string `json:"partition"`
	Period       string `json:"period"`
	PeriodStart  string `json:"periodStart"`
	ResetsAt     string `json:"resetsAt"`
	OnExceed     string `json:"onExceed"`
	Limits       string `json:"limits"`
	Streams      usageC `json:"streams"`
	StreamPoints usageC `json:"streamPoints"`
	Deliveries   usageC `json:"deliveries"`
	PayloadBytes usageC `json:"payloadBytes"`
}

type usageC struct {
	Used  int64  `json:"used"`
	Limit *int64 `json:"limit"`
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func (in *instance) usage(partition string) usageResp {
	in.t.Helper()
	code, out := in.call("GET", "/streaming/v1/partitions/"+url.PathEscape(partition)+"/usage", in.token(partition), nil)
	if code != 200 {
		in.t.Fatalf("usage: %d %s", code, out)
	}
	var u usageResp
	if err := json.Unmarshal(out, &u); err != nil {
		in.t.Fatal(err)
	}
	return u
}

// mint returns a dev token with explicit scopes.
func (in *instance) mint(partition, scopes string) string {
	in.t.Helper()
	out, err := exec.Command(binPath, "token", "--data", in.data, "--partition", partition, "--scope", scopes).Output()
	if err != nil {
		in.t.Fatalf("token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// callRetryAfter makes an API request and returns status, Retry-After and the decoded error.
func (in *instance) callRetryAfter(method, path, token string, body string) (int, string, apiError) {
	in.t.Helper()
	req, err := http.NewRequest(method, in.api+path, strings.NewReader(body))
	if err != nil {
		in.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	var e apiError
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, resp.Header.Get("Retry-After"), e
}

// heldCount is how many held schedule messages of a partition OUTBOX holds.
func heldCount(t *testing.T, in *instance, partition string) int {
	t.Helper()
	js, err := jetstream.New(in.connect())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "OUTBOX")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("hookstream.retry."+partition+".*.*.held"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// awayFromHourBoundary waits, when the next UTC hour is less than a minute away, until it has
// begun: the hold test must not see its hourly quota reset half-way.
func awayFromHourBoundary(t *testing.T) {
	next := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	if time.Until(next) > time.Minute {
		return
	}
	checkFor(t, 2*time.Minute, func() error {
		if time.Now().Before(next.Add(time.Second)) {
			return fmt.Errorf("waiting for %s", next.Format(time.RFC3339))
		}
		return nil
	})
}

// TestQuotas runs one instance with default quotas of 2 streams and 3 deliveries an hour, held
// when exceeded, and checks: the stream limit (429, nothing stored); holding (exactly 3
// deliveries, 2 held in OUTBOX and not dead-lettered, usage 3 of 3, test delivery 429 with
// Retry-After) and their release when an operator raises the limit; refusing (dead letters naming
// the limit, resend 429); and who may read usage and set quotas.
func TestQuotas(t *testing.T) {
	t.Parallel()
	awayFromHourBoundary(t)
	in := startAllInOne(t, options{extra: []string{"--quota-streams", "2", "--quota-deliveries", "3", "--quota-period", "hour", "--quota-exceeded", "hold"}})
	op := in.mint("*", "streams:read,quotas:write")
	nc := in.connect()

	t.Run("maxStreams", func(t *testing.T) {
		rc := newReceiver(t, nil)
		for i := range 2 {
			in.createStream("qs", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{fmt.Sprint("p", i)}})
		}
		path := "/streaming/v1/partitions/qs/streams?type=point-stream"
		code, retry, e := in.callRetryAfter("POST", path, in.token("qs"), `{"webhookUrl":"`+rc.URL+`","pointIds":["p9"]}`)
		if code != 429 || e.Error.Code != "quota_exceeded" || e.Error.Field != "maxStreams" ||
			e.Error.Message != "partition qs has 2 streams; its limit maxStreams is 2" || retry != "" {
			t.Fatalf("third create: %d retry-after %q %+v", code, retry, e)
		}
		code, out := in.call("GET", "/streaming/v1/partitions/qs/streams", in.token("qs"), nil)
		if code != 200 || strings.Count(string(out), `"webhookUrl"`) != 2 || strings.Contains(string(out), "p9") {
			t.Fatalf("after the refused create: %d %s", code, out)
		}
		if u := in.usage("qs"); u.Streams.Used != 2 || u.Streams.Limit == nil || *u.Streams.Limit != 2 {
			t.Fatalf("usage streams %+v", u.Streams)
		}
	})

	t.Run("access", func(t *testing.T) {
		usage := "/streaming/v1/partitions/qh/usage"
		if code, _ := in.call("GET", usage, "", nil); code != 401 {
			t.Errorf("usage without a token: %d", code)
		}
		if code, _ := in.call("GET", usage, in.token("other"), nil); code != 403 {
			t.Errorf("usage with another tenant's token: %d", code)
		}
		put := "/streaming/v1/partitions/qh/quota"
		tenant := in.mint("qh", "streams:read,streams:write,quotas:write")
		if code, out := in.call("PUT", put, tenant, `{"maxDeliveries":100}`); code != 403 {
			t.Errorf("PUT quota with a tenant token holding quotas:write: %d %s", code, out)
		}
		if code, out := in.call("PUT", put, in.token("*"), `{"maxDeliveries":100}`); code != 403 {
			t.Errorf("PUT quota with an operator token without quotas:write: %d %s", code, out)
		}
		if code, _ := in.call("PUT", put, "", `{"maxDeliveries":100}`); code != 401 {
			t.Errorf("PUT quota without a token: %d", code)
		}
		for body, field := range map[string]string{
			`{"maxDeliveries":-1}`: "maxDeliveries", `{"maxStreams":-2}`: "maxStreams", `{"maxBytes":-3}`: "maxBytes",
			`{"period":"week"}`: "period", `{"onExceed":"drop"}`: "onExceed", `{"maxDelivery":3}`: "maxDelivery",
			`{"maxBytes":1.5}`: "maxBytes",
		} {
			code, _, e := in.callRetryAfter("PUT", put, op, body)
			if code != 400 || e.Error.Field != field {
				t.Errorf("PUT %s: %d %+v, want 400 naming %s", body, code, e, field)
			}
		}
		if u := in.usage("qh"); u.Limits != "default" {
			t.Errorf("refused PUTs changed the limits: %+v", u)
		}
	})

	t.Run("hold", func(t *testing.T) {
		outcomes := collectOutcomes(t, nc, "qh")
		rc := newReceiver(t, nil)
		id := in.createStream("qh", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"pt"}})
		for i := range 5 {
			publishReading(t, nc, "qh", "pt", map[string]any{"value": i})
		}
		checkFor(t, 20*time.Second, func() error {
			held := 0
			for _, o := range outcomes() {
				if o.Result == "held" {
					held++
				}
			}
			if held != 2 {
				return fmt.Errorf("%d held outcomes", held)
			}
			return nil
		})
		if n := len(rc.waitFor(t, 3, 10*time.Second)); n != 3 {
			t.Fatalf("receiver got %d deliveries, want 3", n)
		}
		if n := heldCount(t, in, "qh"); n != 2 {
			t.Fatalf("%d held deliveries in OUTBOX, want 2", n)
		}
		if l := in.deadLetters("qh", ""); len(l.Data) != 0 {
			t.Fatalf("held deliveries dead-lettered: %+v", l.Data)
		}
		checkFor(t, 10*time.Second, func() error {
			u := in.usage("qh")
			if u.Deliveries.Used != 3 || u.Deliveries.Limit == nil || *u.Deliveries.Limit != 3 || u.PayloadBytes.Limit != nil || u.PayloadBytes.Used == 0 {
				return fmt.Errorf("usage %+v", u)
			}
			if u.Period != "hour" || u.OnExceed != "hold" || !strings.HasSuffix(u.PeriodStart, ":00:00Z") {
				return fmt.Errorf("usage %+v", u)
			}
			return nil
		})
		test := "/streaming/v1/partitions/qh/streams/" + id + "/test"
		code, retry, e := in.callRetryAfter("POST", test, in.token("qh"), "")
		secs, _ := strconv.Atoi(retry)
		if code != 429 || e.Error.Field != "maxDeliveries" || secs < 1 || secs > 3600 ||
			e.Error.Message != "partition qh made 3 deliveries this hour; its limit maxDeliveries is 3" {
			t.Fatalf("test delivery over quota: %d retry-after %q %+v", code, retry, e)
		}

		// An operator raises the limit: the held deliveries go out now, not at the reset.
		code, out := in.call("PUT", "/streaming/v1/partitions/qh/quota", op, `{"maxDeliveries":10}`)
		if code != 200 || !strings.Contains(string(out), `"limits":"partition"`) {
			t.Fatalf("PUT quota: %d %s", code, out)
		}
		rc.waitFor(t, 5, 20*time.Second)
		if n := heldCount(t, in, "qh"); n != 0 {
			t.Fatalf("%d held deliveries left after the release", n)
		}
		if code, out := in.call("POST", test, in.token("qh"), nil); code != 200 {
			t.Fatalf("test delivery under the raised quota: %d %s", code, out)
		}
		// 5 deliveries and the test delivery are counted.
		checkFor(t, 10*time.Second, func() error {
			if u := in.usage("qh"); u.Deliveries.Used != 6 || *u.Deliveries.Limit != 10 {
				return fmt.Errorf("usage %+v", u.Deliveries)
			}
			return nil
		})
		if n := len(rc.requests()); n != 6 {
			t.Fatalf("receiver got %d requests, want 6", n)
		}
	})

	t.Run("refuse", func(t *testing.T) {
		code, out := in.call("PUT", "/streaming/v1/partitions/qr/quota", op, `{"maxDeliveries":1,"onExceed":"refuse"}`)
		if code != 200 {
			t.Fatalf("PUT quota: %d %s", code, out)
		}
		rc := newReceiver(t, nil)
		in.createStream("qr", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"pt"}})
		for i := range 3 {
			publishReading(t, nc, "qr", "pt", map[string]any{"value": i})
		}
		var l dlqList
		checkFor(t, 20*time.Second, func() error {
			if l = in.deadLetters("qr", ""); len(l.Data) != 2 {
				return fmt.Errorf("%d dead letters", len(l.Data))
			}
			return nil
		})
		for _, e := range l.Data {
			if !strings.HasPrefix(e.Reason, "quota exceeded: ") || !strings.Contains(e.Reason, "maxDeliveries is 1") || len(e.Attempts) != 0 {
				t.Errorf("dead letter %+v", e)
			}
		}
		if n := len(rc.waitFor(t, 1, 10*time.Second)); n != 1 {
			t.Fatalf("receiver got %d, want 1", n)
		}
		if n := heldCount(t, in, "qr"); n != 0 {
			t.Fatalf("%d held under refuse", n)
		}
		// Resending is refused while the quota is exhausted, and nothing is resent.
		checkFor(t, 10*time.Second, func() error {
			code, retry, e := in.callRetryAfter("POST", "/streaming/v1/partitions/qr/dead-letters/resend", in.token("qr"), `{"ids":["`+l.Data[0].ID+`"]}`)
			if code != 429 || e.Error.Field != "maxDeliveries" || retry == "" {
				return fmt.Errorf("resend over quota: %d retry-after %q %+v", code, retry, e)
			}
			return nil
		})
		if l := in.deadLetters("qr", ""); len(l.Data) != 2 {
			t.Fatalf("%d dead letters after the refused resend", len(l.Data))
		}
	})
}
