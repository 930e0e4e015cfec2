package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/auth"
	"hookstream/proto"
)

// browser is a cookie-keeping HTTP client of the console that does not follow redirects, so
// that a test sees each answer.
type browser struct {
	t    *testing.T
	a    *apiTest
	c    *http.Client
	csrf string
}

func (a *apiTest) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		a.t.Fatal(err)
	}
	return &browser{t: a.t, a: a, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// htmlPage is an answer of the console.
type htmlPage struct {
	status   int
	location string
	body     string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) htmlPage {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(raw); m != nil {
		b.csrf = string(m[1])
	}
	return htmlPage{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(raw)}
}

func (b *browser) get(path string) htmlPage {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.a.srv.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post submits a form with the page's CSRF token (unless form sets csrf itself).
func (b *browser) post(path string, form url.Values) htmlPage {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, b.a.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.a.srv.URL)
	return b.do(req)
}

// signIn signs in with token and loads a page, so that the browser holds a CSRF token.
func (b *browser) signIn(token string) {
	b.t.Helper()
	p := b.post("/console/signin", url.Values{"token": {token}})
	if p.status != http.StatusSeeOther || p.location != "/console/" {
		b.t.Fatalf("sign in: %d %s %s", p.status, p.location, p.body)
	}
	if home := b.get("/console/"); home.status == http.StatusSeeOther {
		b.get(home.location)
	}
}

func wantPage(t *testing.T, p htmlPage, status int, what string, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("%s: status %d, want %d (location %q)\n%s", what, p.status, status, p.location, p.body)
	}
	for _, s := range contains {
		if !strings.Contains(p.body, s) {
			t.Fatalf("%s: page lacks %q\n%s", what, s, p.body)
		}
	}
}

func TestConsoleSignIn(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:1/hook"))
	b := a.browser()
	p := b.get("/console/streams")
	wantPage(t, b.get("/console/"), http.StatusOK, "sign-in page", `<label for="token">API token</label>`)
	if p.status != http.StatusNotFound {
		t.Fatalf("a page outside a partition: %d", p.status)
	}
	p = b.get("/console/p/p1/streams")
	if p.status != http.StatusSeeOther || p.location != "/console/" {
		t.Fatalf("streams without a session: %d %q", p.status, p.location)
	}
	wantPage(t, b.post("/console/signin", url.Values{"token": {"not-a-jwt"}}), http.StatusUnauthorized, "bad token",
		`id="token-error"`, "this token is not accepted")
	wantPage(t, b.post("/console/signin", url.Values{"token": {""}}), http.StatusBadRequest, "no token", "paste an API token")

	resp := b.post("/console/signin", url.Values{"token": {a.tok("p1")}})
	if resp.status != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.status)
	}
	u, _ := url.Parse(a.srv.URL + "/console/")
	cookies := b.c.Jar.Cookies(u)
	if len(cookies) != 1 || cookies[0].Name != "hookstream_session" {
		t.Fatalf("cookies after sign-in: %v", cookies)
	}
	p = b.get("/console/")
	if p.status != http.StatusSeeOther || p.location != "/console/p/p1/streams" {
		t.Fatalf("home when signed in: %d %q", p.status, p.location)
	}
	wantPage(t, b.get(p.location), http.StatusOK, "streams", id, `id="partition">p1<`)
	wantPage(t, b.post("/console/signout", nil), http.StatusSeeOther, "sign out")
	if p = b.get("/console/p/p1/streams"); p.status != http.StatusSeeOther {
		t.Fatalf("streams after sign-out: %d", p.status)
	}
}

// TestConsoleSessionCookie checks the session cookie's attributes as the server sets them.
func TestConsoleSessionCookie(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	resp, err := http.PostForm(a.srv.URL+"/console/signin", url.Values{"token": {a.tok("p1")}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	set := resp.Request.Response.Header.Get("Set-Cookie")
	for _, want := range []string{"hookstream_session=", "Path=/console", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(set, want) {
			t.Fatalf("Set-Cookie %q lacks %q", set, want)
		}
	}
}

// TestConsoleTenancy: a p1 token sees and touches nothing of p2 through the console.
func TestConsoleTenancy(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	mine := a.createStream("p1", pointStream("http://127.0.0.1:1/mine"))
	theirs := a.createStream("p2", pointStream("http://127.0.0.1:1/theirs"))
	dl := a.deadLetter("p2", theirs, "d-theirs")
	b := a.browser()
	b.signIn(a.tok("p1"))

	list := b.get("/console/p/p1/streams")
	wantPage(t, list, http.StatusOK, "own list", mine)
	if strings.Contains(list.body, theirs) {
		t.Fatal("p1's list shows p2's stream")
	}
	for _, path := range []string{"/console/p/p2/streams", "/console/p/p2/streams/" + theirs, "/console/p/p2/dead-letters",
		"/console/p/p2/dead-letters/" + dl, "/console/p/p2/usage", "/console/p/p2/tail", "/console/p/p2/tail/events"} {
		wantPage(t, b.get(path), http.StatusForbidden, "GET "+path, `token is not valid for partition`)
	}
	for _, path := range []string{"/console/p/p1/streams/" + theirs, "/console/p/p1/dead-letters/" + dl} {
		wantPage(t, b.get(path), http.StatusNotFound, "GET "+path, "not found")
	}
	posts := map[string]url.Values{
		"/console/p/p2/streams/" + theirs + "/delete": nil,
		"/console/p/p1/streams/" + theirs + "/delete": nil,
		"/console/p/p2/streams/" + theirs + "/status": {"status": {"disabled"}},
		"/console/p/p1/streams/" + theirs + "/status": {"status": {"disabled"}},
		"/console/p/p1/streams/" + theirs + "/edit":   {"webhookUrl": {"http://127.0.0.1:1/stolen"}, "pointIds": {"x"}},
		"/console/p/p1/dead-letters/resend":           {"one": {dl}},
		"/console/p/p2/dead-letters/resend":           {"one": {dl}},
		"/console/p/p1/dead-letters/resend?all":       {"all": {"1"}, "streamId": {theirs}},
	}
	for path, form := range posts {
		if p := b.post(path, form); p.status != http.StatusForbidden && p.status != http.StatusNotFound {
			t.Fatalf("POST %s: %d, want 403 or 404\n%s", path, p.status, p.body)
		}
	}
	st := a.stored("p2", theirs)
	if st.Status != "active" || st.WebhookURL != "http://127.0.0.1:1/theirs" {
		t.Fatalf("p2's stream changed: %+v", st)
	}
	if n := len(a.subjectMsgs(proto.StreamOutbox, proto.OutboxSubject("p2", theirs))); n != 0 {
		t.Fatalf("p2's dead letter was resent (%d outbox messages)", n)
	}
}

// TestConsoleForgery: a form without the session's CSRF token, or from another origin, does
// nothing.
func TestConsoleForgery(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:1/hook"))
	b := a.browser()
	b.signIn(a.tok("p1"))
	wantPage(t, b.post("/console/p/p1/streams/"+id+"/delete", url.Values{"csrf": {"forged"}}), http.StatusForbidden, "forged csrf", "stale")
	wantPage(t, b.post("/console/p/p1/streams/"+id+"/delete", url.Values{"csrf": {""}}), http.StatusForbidden, "no csrf", "stale")
	req, err := http.NewRequest(http.MethodPost, a.srv.URL+"/console/p/p1/streams/"+id+"/delete", strings.NewReader("csrf="+url.QueryEscape(b.csrf)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	wantPage(t, b.do(req), http.StatusForbidden, "other origin", "another site")
	want(t, a.in("p1", "GET", "/streams/"+id, nil), http.StatusOK, "stream kept")
}

// streamForm is a create form's values: a valid point stream, with kv (name, value, …) set.
func streamForm(kv ...string) url.Values {
	v := url.Values{"type": {"point-stream"}, "method": {"POST"}, "status": {"active"}, "webhookUrl": {"http://127.0.0.1:1/h"}, "pointIds": {"pt1\npt2"}}
	for i := 0; i < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// TestConsoleFormRefusals: the API's refusals land next to their fields, and store nothing.
func TestConsoleFormRefusals(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	b := a.browser()
	b.signIn(a.tok("p1"))
	wantPage(t, b.get("/console/p/p1/streams/new"), http.StatusOK, "new form", `<label for="f-webhookUrl">Webhook URL</label>`)
	refusals := []struct{ name, key, value, field, message string }{
		{"bad url", "webhookUrl", "ftp://x", "webhookUrl", "scheme &#34;ftp&#34; is not allowed"},
		{"no points", "pointIds", "", "pointIds", "must be a non-empty array"},
		{"bad point", "pointIds", "ok\nbad.id", "pointIds", "is not a valid point id"},
		{"retries", "maxRetry", "99", "maxRetry", "must be 0 to"},
		{"not a number", "timeoutMs", "soon", "timeoutMs", "must be of type int"},
		{"options", "options", "[1]", "options", "must be a JSON object"},
		{"nested option", "options", `{"auth": {"type": "magic"}}`, "options", "auth"},
	}
	for _, c := range refusals {
		p := b.post("/console/p/p1/streams", streamForm(c.key, c.value))
		wantPage(t, p, http.StatusBadRequest, c.name, `id="f-`+c.field+`-error"`, c.message, `aria-invalid="true"`)
	}
	if n, _ := a.svc.tally.totals(context.Background(), "p1"); n.streams != 0 {
		t.Fatalf("refused forms stored %d streams", n.streams)
	}
}

// TestConsoleStreamLifecycle: create, edit, pause and delete through the forms change the
// stream.
func TestConsoleStreamLifecycle(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	b := a.browser()
	b.signIn(a.tok("p1"))
	p := b.post("/console/p/p1/streams", streamForm("name", "Boiler room", "maxRetry", "2", "propagateTrace", "on"))
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/console/p/p1/streams/") {
		t.Fatalf("create: %d %q\n%s", p.status, p.location, p.body)
	}
	id := strings.TrimPrefix(strings.TrimSuffix(p.location, "?created=1"), "/console/p/p1/streams/")
	wantPage(t, b.get(p.location), http.StatusOK, "stream page", "Boiler room", "Stream created.", `id="send-test"`, "<svg")
	st := a.stored("p1", id)
	if st.Name != "Boiler room" || st.MaxRetry != 2 || len(st.PointIDs) != 2 || !st.PropagateTrace {
		t.Fatalf("created: %+v", st)
	}
	wantPage(t, b.get("/console/p/p1/streams/"+id+"/edit"), http.StatusOK, "edit form", `value="http://127.0.0.1:1/h"`, "pt1\npt2")
	wantPage(t, b.post("/console/p/p1/streams/"+id+"/edit", url.Values{"webhookUrl": {"nope"}, "pointIds": {"pt1"}, "hadPoints": {"1"}}),
		http.StatusBadRequest, "bad edit", `id="f-webhookUrl-error"`, "must be an absolute http(s) URL")
	p = b.post("/console/p/p1/streams/"+id+"/edit", url.Values{"webhookUrl": {"http://127.0.0.1:2/fixed"}, "pointIds": {"pt1"}, "hadPoints": {"1"},
		"maxRetry": {"3"}, "method": {"POST"}, "origMethod": {"POST"}})
	wantPage(t, p, http.StatusSeeOther, "edit")
	if st = a.stored("p1", id); st.WebhookURL != "http://127.0.0.1:2/fixed" || st.MaxRetry != 3 || len(st.PointIDs) != 1 || st.Name != "" {
		t.Fatalf("edited: %+v", st)
	}
	wantPage(t, b.post("/console/p/p1/streams/"+id+"/status", url.Values{"status": {"paused"}}), http.StatusSeeOther, "pause")
	if st = a.stored("p1", id); st.Status != "paused" {
		t.Fatalf("status after pause: %s", st.Status)
	}
	wantPage(t, b.post("/console/p/p1/streams/"+id+"/status", url.Values{"status": {"gone"}}), http.StatusBadRequest, "bad status")
	wantPage(t, b.post("/console/p/p1/streams/"+id+"/delete", nil), http.StatusSeeOther, "delete")
	want(t, a.in("p1", "GET", "/streams/"+id, nil), http.StatusNotFound, "deleted")
}

// TestConsoleReadOnlyToken: a token without streams:write sees the streams but every change is
// the API's 403.
func TestConsoleReadOnlyToken(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:1/hook"))
	b := a.browser()
	b.signIn(a.token([]string{"p1"}, auth.ScopeStreamsRead))
	wantPage(t, b.get("/console/p/p1/streams/"+id), http.StatusOK, "stream page", id)
	wantPage(t, b.post("/console/p/p1/streams/"+id+"/delete", nil), http.StatusForbidden, "delete", "streams:write")
	wantPage(t, b.post("/console/p/p1/streams", url.Values{"webhookUrl": {"http://127.0.0.1:1/h"}, "pointIds": {"a"}}), http.StatusForbidden, "create", "streams:write")
	dl := a.deadLetter("p1", id, "d1")
	wantPage(t, b.post("/console/p/p1/dead-letters/resend", url.Values{"one": {dl}}), http.StatusForbidden, "resend", "deadletters:write")
}

// TestConsolePages: 120 streams are listed 50 at a time.
func TestConsolePages(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	for i := range 120 {
		a.createStream("p1", pointStream("http://127.0.0.1:1/h"+strconv.Itoa(i), "pt"+strconv.Itoa(i)))
	}
	b := a.browser()
	b.signIn(a.tok("p1"))
	next := regexp.MustCompile(`href="(/console/p/p1/streams\?cursor=[^"]+)" rel="next"`)
	path, rows := "/console/p/p1/streams", []int{}
	for range 5 {
		p := b.get(strings.ReplaceAll(path, "&amp;", "&"))
		wantPage(t, p, http.StatusOK, "streams page")
		rows = append(rows, strings.Count(p.body, `<th scope="row">`))
		m := next.FindStringSubmatch(p.body)
		if m == nil {
			break
		}
		path = m[1]
	}
	if fmt.Sprint(rows) != "[50 50 20]" {
		t.Fatalf("rows per page: %v, want [50 50 20]", rows)
	}
}

// TestConsoleDeadLetters: list, filter, view the body, resend one, the selected, all.
func TestConsoleDeadLetters(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:1/hook"))
	other := a.createStream("p1", pointStream("http://127.0.0.1:1/other"))
	d1, d2, d3 := a.deadLetter("p1", id, "d1"), a.deadLetter("p1", id, "d2"), a.deadLetter("p1", other, "d3")
	b := a.browser()
	b.signIn(a.tok("p1"))
	wantPage(t, b.get("/console/p/p1/dead-letters"), http.StatusOK, "list", `id="dl-`+d1+`"`, `id="dl-`+d3+`"`, "<td>connection refused</td>")
	p := b.get("/console/p/p1/dead-letters?streamId=" + other)
	wantPage(t, p, http.StatusOK, "filtered", `id="dl-`+d3+`"`, `id="resend-all"`)
	if strings.Contains(p.body, `id="dl-`+d1+`"`) {
		t.Fatal("the filter shows another stream's dead letter")
	}
	wantPage(t, b.get("/console/p/p1/dead-letters?since=yesterday"), http.StatusBadRequest, "bad filter", `id="since-error"`, "RFC 3339")
	wantPage(t, b.get("/console/p/p1/dead-letters/"+d1), http.StatusOK, "view", `<pre id="dl-body">{&#34;value&#34;:1}</pre>`, "connection refused")

	p = b.post("/console/p/p1/dead-letters/resend", url.Values{"one": {d1}, "streamId": {id}})
	if p.status != http.StatusSeeOther || !strings.Contains(p.location, "resent=1") {
		t.Fatalf("resend one: %d %q\n%s", p.status, p.location, p.body)
	}
	wantPage(t, b.get(p.location), http.StatusOK, "after resend", "Resent 1 dead letter")
	a.waitMsgs(proto.StreamOutbox, proto.OutboxSubject("p1", id), 1)
	wantPage(t, b.post("/console/p/p1/dead-letters/resend", url.Values{"ids": {d1, d2}}), http.StatusSeeOther, "resend selected")
	// d1's second resend is the same message (its id names the entry), de-duplicated by OUTBOX.
	a.waitMsgs(proto.StreamOutbox, proto.OutboxSubject("p1", id), 2)
	wantPage(t, b.post("/console/p/p1/dead-letters/resend", url.Values{"all": {"1"}, "streamId": {other}}), http.StatusSeeOther, "resend all")
	a.waitMsgs(proto.StreamOutbox, proto.OutboxSubject("p1", other), 1)
	wantPage(t, b.post("/console/p/p1/dead-letters/resend", url.Values{"ids": {"999999"}}), http.StatusNotFound, "unknown id",
		`id="resend-error"`, "dead letter 999999 not found")
	wantPage(t, b.post("/console/p/p1/dead-letters/resend", nil), http.StatusBadRequest, "nothing selected", "give ids")
}

func TestConsoleUsage(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	a.createStream("p1", pointStream("http://127.0.0.1:1/hook", "a", "b"))
	b := a.browser()
	b.signIn(a.tok("p1"))
	p := b.get("/console/p/p1/usage")
	wantPage(t, p, http.StatusOK, "usage", `<th scope="row">Streams</th><td class="num">1</td>`, `<th scope="row">Point ids of all streams</th><td class="num">2</td>`)
}

// TestConsoleTail: outcomes published on OUTCOMES subjects reach an open event stream; another
// partition's do not.
func TestConsoleTail(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	b := a.browser()
	b.signIn(a.tok("p1"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.srv.URL+"/console/p/p1/tail/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("tail: %d %s", resp.StatusCode, ct)
	}
	lines := bufio.NewReader(resp.Body)
	if l, err := lines.ReadString('\n'); err != nil || !strings.HasPrefix(l, ": tail of p1") {
		t.Fatalf("first line %q: %v", l, err)
	}
	nc := a.bus.Conn.NC
	if err := nc.Publish(proto.OutcomeSubject("p2", "s2", proto.OutcomeDelivered), []byte(`{"streamId":"s2"}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(proto.OutcomeSubject("p1", "s1", proto.OutcomeDelivered), []byte(`{"streamId":"s1"}`)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		l, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, got)
		}
		if l = strings.TrimSpace(l); l != "" {
			got = append(got, l)
		}
	}
	if got[0] != "event: outcome" || got[1] != `data: {"streamId":"s1"}` {
		t.Fatalf("events: %q", got)
	}
}

// TestConsoleBacklog: the list and the stream's page count what OUTBOX holds for each stream
// (new, retrying and held deliveries), and nothing of another stream.
func TestConsoleBacklog(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	busy := a.createStream("p1", pointStream("http://127.0.0.1:1/busy"))
	calm := a.createStream("p1", pointStream("http://127.0.0.1:1/calm"))
	d := &proto.Delivery{V: proto.Version, Partition: "p1", StreamID: busy}
	a.publish(proto.OutboxSubject("p1", busy), "b1", d)
	a.publish(proto.OutboxSubject("p1", busy), "b2", d)
	a.publish(proto.RetrySubject("p1", busy, "d3"), "b3", d)
	a.publish(proto.HeldSubject("p1", busy), "b4", d)
	a.publish(proto.OutboxSubject("p2", calm), "other", d) // same id, another partition
	b := a.browser()
	b.signIn(a.tok("p1"))
	row := regexp.MustCompile(`(?s)streams/([0-9a-f-]+)">.*?<td class="num">(\d+)</td>\s*<td class="num">(\d+)</td>\s*<td class="num">([^<]+)</td>`)
	got := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(b.get("/console/p/p1/streams").body, -1) {
		got[m[1]] = m[4]
	}
	if got[busy] != "4" || got[calm] != "0" {
		t.Fatalf("backlog by stream: %v, want %s: 4, %s: 0", got, busy, calm)
	}
	wantPage(t, b.get("/console/p/p1/streams/"+busy), http.StatusOK, "stream page", `<dd id="backlog">4</dd>`)
}

// TestConsoleGeneratedSecret: a secret the API generates is shown in the answer of the change
// that made it, and never again.
func TestConsoleGeneratedSecret(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	b := a.browser()
	b.signIn(a.tok("p1"))
	secret := regexp.MustCompile(`<pre id="new-secret">([^<]+)</pre>`)
	p := b.post("/console/p/p1/streams", streamForm("signature", "standard-webhooks"))
	wantPage(t, p, http.StatusOK, "create with a generated secret", "shown this once")
	m := secret.FindStringSubmatch(p.body)
	if m == nil || !strings.HasPrefix(m[1], "whsec_") {
		t.Fatalf("no generated secret shown: %v", m)
	}
	id := regexp.MustCompile(`id="stream-id">([^<]+)<`).FindStringSubmatch(p.body)[1]
	if again := b.get("/console/p/p1/streams/" + id); strings.Contains(again.body, m[1]) || strings.Contains(again.body, "new-secret") {
		t.Fatal("the stream page shows the secret again")
	}
	p = b.post("/console/p/p1/streams/"+id+"/secret", nil)
	wantPage(t, p, http.StatusOK, "rotate", `id="new-secret"`, "keeps signing for the overlap")
	if n := secret.FindStringSubmatch(p.body); n == nil || n[1] == m[1] || !strings.HasPrefix(n[1], "whsec_") {
		t.Fatalf("rotated secret: %v (was %s)", n, m[1])
	}
	p = b.post("/console/p/p1/streams", streamForm("signature", "hub-sha256", "webhookSecret", "my-own-secret"))
	wantPage(t, p, http.StatusSeeOther, "create with a given secret")
	if page := b.get(p.location); strings.Contains(page.body, "my-own-secret") {
		t.Fatal("a given secret is shown back")
	}
}
