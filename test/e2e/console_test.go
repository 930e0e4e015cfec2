package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
)

// chromiumPath finds a Chromium or Chrome binary; "" when there is none.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// tab is a headless Chromium tab on the console of an instance.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// newTab starts headless Chromium (skipping the test when none is installed; .ci/run installs
// Debian's chromium) and opens the console's sign-in page.
func newTab(t *testing.T, base string) *tab {
	t.Helper()
	exe := chromiumPath()
	if exe == "" && os.Getenv("CI") != "" {
		t.Fatal("no chromium binary found, but .ci/run installs Debian's chromium: the console's browser test must run in CI")
	}
	if exe == "" {
		t.Skip("no chromium binary found (apt-get install chromium): the console's browser test cannot run")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &tab{t: t, ctx: ctx, base: base}
	// The first action starts the browser; it runs without a timeout, which would stop it.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/console/")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// do runs steps, each call bounded to 30 s.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v\npage: %s", what, err, b.eval(`document.body ? document.body.innerText : ""`))
	}
}

// eval evaluates a JavaScript expression of type string in the page.
func (b *tab) eval(js string, opts ...chromedp.EvaluateOption) string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, opts...))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

// text is the text of the first element matching a CSS selector ("" when none does).
func (b *tab) text(sel string) string {
	q, _ := json.Marshal(sel)
	return b.eval(fmt.Sprintf(`(document.querySelector(%s) || {}).innerText || ""`, q))
}

func (b *tab) open(path string) { b.t.Helper(); b.do("open "+path, chromedp.Navigate(b.base+path)) }

// waitText reloads path until the text of sel contains want.
func (b *tab) waitText(path, sel, want string) {
	b.t.Helper()
	checkFor(b.t, 60*time.Second, func() error {
		b.open(path)
		if got := b.text(sel); !strings.Contains(got, want) {
			return fmt.Errorf("%s %s: %q lacks %q", path, sel, got, want)
		}
		return nil
	})
}

// shot writes a screenshot of the whole page to docs/console/name.png when CONSOLE_SCREENSHOTS
// is set (the README shows them).
func (b *tab) shot(name string) {
	b.t.Helper()
	if os.Getenv("CONSOLE_SCREENSHOTS") == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// signIn pastes token into the sign-in form and waits for the stream list.
func (b *tab) signIn(token string) {
	b.t.Helper()
	b.open("/console/")
	b.do("sign in", chromedp.WaitVisible("#token"), chromedp.SetValue("#token", token), chromedp.Click("#signin"),
		chromedp.WaitVisible("#new-stream"))
}

// TestConsoleBrowser drives the web console in headless Chromium against the real binary: sign
// in, create a stream, publish a reading and see it delivered, break the endpoint and see the
// failure and the dead letter (and its body), fix the URL, resend and see it delivered; then a
// test event, the usage, the live tail, and that a p1 token reaches nothing of p2.
func TestConsoleBrowser(t *testing.T) {
	in := startAllInOne(t, options{})
	b := newTab(t, in.api)
	rc := newReceiver(t, func(_ int, r received) int {
		if strings.HasSuffix(r.Path, "/broken") {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	nc := in.connect()
	b.signIn(in.token("p1"))

	id := consoleCreate(t, b, in, rc.URL+"/hook")
	publishReading(t, nc, "p1", "boiler-temp", map[string]any{"value": 71.5})
	rc.waitFor(t, 1, 30*time.Second)
	b.waitText("/console/p/p1/streams/"+id, "#deliveries tbody tr", "delivered")

	// Break the endpoint: the next reading fails, is retried once, and is dead-lettered.
	consoleSetURL(t, b, in, id, rc.URL+"/broken")
	publishReading(t, nc, "p1", "boiler-temp", map[string]any{"value": 74})
	b.waitText("/console/p/p1/streams/"+id, "#deliveries tbody tr", "dead_lettered")
	if got := b.text("#deliveries"); !strings.Contains(got, "retrying") || !strings.Contains(got, "500") {
		t.Fatalf("deliveries lack the failed attempts: %q", got)
	}
	dlPage := "/console/p/p1/dead-letters?streamId=" + id
	b.waitText(dlPage, "#dead-letters", "HTTP 500")
	dl := b.eval(`document.querySelector('#dead-letters input[name="ids"]').value`)
	b.shot("dead-letters")
	b.do("view the dead letter", chromedp.Click(`a[href$="/dead-letters/`+dl+`"]`), chromedp.WaitVisible("#dl-body"))
	if body := b.text("#dl-body"); !strings.Contains(body, `"value":74`) {
		t.Fatalf("dead letter body: %q", body)
	}

	// Fix the URL and resend: the dead letter is delivered to the fixed endpoint.
	consoleSetURL(t, b, in, id, rc.URL+"/fixed")
	b.open(dlPage)
	b.do("resend", chromedp.Click("#resend-"+dl), chromedp.WaitVisible("#resent"))
	got := rc.waitFor(t, 4, 30*time.Second)
	last := got[len(got)-1]
	if last.Path != "/fixed" || last.Header.Get("Webhook-Id") != got[1].Header.Get("Webhook-Id") {
		t.Fatalf("resent delivery: %s %q; the broken one had webhook-id %q", last.Path, last.Header.Get("Webhook-Id"), got[1].Header.Get("Webhook-Id"))
	}
	b.waitText("/console/p/p1/streams/"+id, "#deliveries tbody tr", "delivered")
	b.shot("stream")
	b.open("/console/p/p1/streams")
	b.shot("streams")

	b.open("/console/p/p1/streams/" + id)
	b.do("send a test event", chromedp.Click("#send-test"), chromedp.WaitVisible("#test-result"))
	if res := b.text("#test-result"); !strings.Contains(res, "HTTP 200") {
		t.Fatalf("test event: %q", res)
	}
	b.open("/console/p/p1/usage")
	if usage := b.text("#usage"); !strings.Contains(usage, "Streams\t3") {
		t.Fatalf("usage: %q", usage)
	}

	consoleTail(t, b, nc)
	consoleTenancy(t, b, in)
}

// consoleCreate creates a stream through the form (after two more through the API, for the
// list's screenshot) and returns its id.
func consoleCreate(t *testing.T, b *tab, in *instance, url string) string {
	t.Helper()
	in.createStream("p1", map[string]any{"name": "Chiller plant", "webhookUrl": url, "pointIds": []string{"chiller-1"}, "status": "paused"})
	in.createStream("p1", map[string]any{"name": "Lobby air quality", "webhookUrl": url, "pointIds": []string{"lobby-co2", "lobby-pm25"}})
	b.do("new stream form", chromedp.Click("#new-stream"), chromedp.WaitVisible("#f-webhookUrl"),
		chromedp.SetValue("#f-name", "Boiler room"), chromedp.SetValue("#f-webhookUrl", url),
		chromedp.SetValue("#f-pointIds", "boiler-temp\nboiler-pressure"), chromedp.SetValue("#f-maxRetry", "1"),
		chromedp.Click("#save"), chromedp.WaitVisible("#stream-id"))
	id := b.text("#stream-id")
	in.waitEffective(id)
	b.open("/console/p/p1/streams")
	if list := b.text("#streams"); !strings.Contains(list, "Boiler room") || !strings.Contains(list, "paused") {
		t.Fatalf("stream list: %q", list)
	}
	return id
}

// consoleSetURL changes a stream's webhook URL through the edit form and waits until the
// services have the change.
func consoleSetURL(t *testing.T, b *tab, in *instance, id, url string) {
	t.Helper()
	b.open("/console/p/p1/streams/" + id + "/edit")
	b.do("edit "+url, chromedp.WaitVisible("#f-webhookUrl"), chromedp.SetValue("#f-webhookUrl", url),
		chromedp.Click("#save"), chromedp.WaitVisible("#stream-url"))
	if got := b.text("#stream-url"); got != url {
		t.Fatalf("stream URL after edit: %q, want %q", got, url)
	}
	in.waitEffective(id)
}

// consoleTail sees an outcome arrive in the live tail, then holds the next one while paused
// and shows it on resume.
func consoleTail(t *testing.T, b *tab, nc *nats.Conn) {
	t.Helper()
	b.open("/console/p/p1/tail")
	waitJS(t, b, `document.getElementById("tail-state").innerText`, "live")
	publishReading(t, nc, "p1", "lobby-co2", map[string]any{"value": 612})
	waitJS(t, b, `document.getElementById("tail-rows").innerText`, "delivered")
	rows := b.eval(`String(document.querySelectorAll("#tail-rows tr").length)`)
	b.do("pause", chromedp.Click("#tail-pause"))
	publishReading(t, nc, "p1", "lobby-co2", map[string]any{"value": 640})
	waitJS(t, b, `document.getElementById("tail-state").innerText`, "paused, 1 waiting")
	if now := b.eval(`String(document.querySelectorAll("#tail-rows tr").length)`); now != rows {
		t.Fatalf("the paused tail went on: %s rows, had %s", now, rows)
	}
	b.do("resume", chromedp.Click("#tail-pause"))
	if now := b.eval(`String(document.querySelectorAll("#tail-rows tr").length)`); now == rows {
		t.Fatalf("resume showed nothing held: still %s rows", now)
	}
}

// waitJS polls a JavaScript string expression until it contains want.
func waitJS(t *testing.T, b *tab, js, want string) {
	t.Helper()
	checkFor(t, 30*time.Second, func() error {
		if got := b.eval(js); !strings.Contains(got, want) {
			return fmt.Errorf("%s: %q lacks %q", js, got, want)
		}
		return nil
	})
}

// consoleTenancy: signed in with a p1 token, the browser neither sees nor changes p2's stream.
func consoleTenancy(t *testing.T, b *tab, in *instance) {
	t.Helper()
	theirs := in.createStream("p2", map[string]any{"name": "Their stream", "webhookUrl": "http://127.0.0.1:1/theirs", "pointIds": []string{"x"}})
	b.open("/console/p/p1/streams")
	if list := b.text("main"); strings.Contains(list, "Their stream") || strings.Contains(list, theirs) {
		t.Fatalf("p1's list shows p2's stream: %q", list)
	}
	b.open("/console/p/p2/streams")
	if got := b.text("main"); !strings.Contains(got, `token is not valid for partition "p2"`) {
		t.Fatalf("p2's list with a p1 token: %q", got)
	}
	b.open("/console/p/p1/streams/" + theirs)
	if got := b.text("main"); !strings.Contains(got, "not found") {
		t.Fatalf("p2's stream under p1: %q", got)
	}
	// A form forged in the page, with the session's CSRF token, still goes through the API's
	// partition check.
	b.open("/console/p/p1/streams")
	for _, path := range []string{"/console/p/p2/streams/" + theirs + "/delete", "/console/p/p1/streams/" + theirs + "/delete"} {
		status := b.eval(`fetch("`+path+`", {method: "POST", body: new URLSearchParams({csrf: document.querySelector("[name=csrf]").value})}).then(r => String(r.status))`, chromedp.EvalAwaitPromise)
		if status != "403" && status != "404" {
			t.Fatalf("POST %s from a p1 session: %s", path, status)
		}
	}
	if code, out := in.call("GET", "/streaming/v1/partitions/p2/streams/"+theirs, in.token("p2"), nil); code != http.StatusOK {
		t.Fatalf("p2's stream after the p1 session's attempts: %d %s", code, out)
	}
}
