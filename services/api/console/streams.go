package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// streamView is a stream as the API answers it (the attributes the console shows).
type streamView struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Attributes struct {
		Name            string   `json:"name"`
		WebhookURL      string   `json:"webhookUrl"`
		PointIDs        []string `json:"pointIds"`
		EventTypes      []string `json:"eventTypes"`
		Filter          string   `json:"filter"`
		Status          string   `json:"status"`
		StatusReason    string   `json:"statusReason"`
		CreatedAt       string   `json:"createdAt"`
		UpdatedAt       string   `json:"updatedAt"`
		Method          string   `json:"method"`
		Format          string   `json:"format"`
		Signature       string   `json:"signature"`
		MaxRetry        int      `json:"maxRetry"`
		FailureLimit    int      `json:"failureLimit"`
		MaxInFlight     int      `json:"maxInFlight"`
		TimeoutMs       int      `json:"timeoutMs"`
		MaxRate         float64  `json:"maxRate"`
		Ordered         bool     `json:"ordered"`
		PropagateTrace  bool     `json:"propagateTrace"`
		AttemptCount    int64    `json:"attemptCount"`
		LastTriggeredAt string   `json:"lastTriggeredAt"`
		LastSuccessAt   string   `json:"lastSuccessAt"`
		// WebhookSecret is set only in the answer of a change that generated a secret.
		WebhookSecret       string `json:"webhookSecret"`
		PublicKey           string `json:"publicKey"`
		ConsecutiveFailures int64  `json:"consecutiveFailures"`
	} `json:"attributes"`
}

// Health sums up delivery's counters: "ok", "failing" or "idle" (no attempt yet).
func (s *streamView) Health() string {
	a := s.Attributes
	switch {
	case a.ConsecutiveFailures > 0:
		return "failing"
	case a.AttemptCount == 0:
		return "idle"
	default:
		return "ok"
	}
}

// Label is the stream's name, or its id when it has none.
func (s *streamView) Label() string {
	if s.Attributes.Name != "" {
		return s.Attributes.Name
	}
	return s.ID
}

// streamsPage is a page of the streams list: the API's page of at most listPage streams.
type streamsPage struct {
	Data []streamView `json:"data"`
	Next string       `json:"next"`
	// Cursor is the cursor this page was read with ("" for the first).
	Cursor string `json:"-"`
	// Backlog is each stream's deliveries waiting in OUTBOX, by id (backlog.go).
	Backlog map[string]string `json:"-"`
}

// listPage is how many streams one page of the list shows: a partition with thousands of streams
// is read a page at a time, never at once.
const listPage = "50"

func (c *Console) streamList(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	q := url.Values{"limit": {listPage}}
	cur := r.URL.Query().Get("cursor")
	if cur != "" {
		q.Set("cursor", cur)
	}
	var pg streamsPage
	if err := c.call(r, s, p, http.MethodGet, "/streams", q, nil, &pg); err != nil {
		return err
	}
	pg.Cursor = cur
	ids := make([]string, len(pg.Data))
	for i := range pg.Data {
		ids[i] = pg.Data[i].ID
	}
	pg.Backlog = c.backlog(r.Context(), p, ids)
	c.render(w, r, http.StatusOK, "streams", view{Title: "Streams", Session: s, Partition: p, Nav: "streams"}, &pg)
	return nil
}

func (c *Console) newStream(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	f := newForm(true, streamsPath(p))
	f.Values["propagateTrace"] = "on"
	c.render(w, r, http.StatusOK, "form", view{Title: "New stream", Session: s, Partition: p, Nav: "streams"}, f)
	return nil
}

// createStream posts the form to the API; its refusal is shown next to the field it names.
func (c *Console) createStream(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	f := newForm(true, streamsPath(p))
	f.read(r)
	var st streamView
	err := c.submit(r, s, p, f, http.MethodPost, "/streams", url.Values{"type": {f.Values["type"]}}, &st)
	if err != nil {
		return c.refuse(w, r, s, p, "New stream", f, err)
	}
	if st.Attributes.WebhookSecret != "" {
		return c.showStream(w, r, s, p, st.ID, shown{notice: "Stream created.", secret: st.Attributes.WebhookSecret})
	}
	http.Redirect(w, r, streamPath(p, st.ID)+"?created=1", http.StatusSeeOther)
	return nil
}

// submit sends the form's body to the API.
func (c *Console) submit(r *http.Request, s *session, p string, f *streamForm, method, path string, q url.Values, out any) error {
	body, ae := f.body()
	if ae != nil {
		return ae
	}
	return c.call(r, s, p, method, path, q, body, out)
}

// refuse shows the form again with an API's 4xx next to its field; other errors fail the page.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, s *session, p, title string, f *streamForm, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status >= 500 || ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden {
		return err
	}
	f.fail(ae)
	c.render(w, r, ae.Status, "form", view{Title: title, Session: s, Partition: p, Nav: "streams"}, f)
	return nil
}

func (c *Console) loadStream(r *http.Request, s *session, p, id string) (*streamView, error) {
	var st streamView
	if err := c.call(r, s, p, http.MethodGet, "/streams/"+url.PathEscape(id), nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (c *Console) editStream(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	st, err := c.loadStream(r, s, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	f := newForm(false, streamPath(p, st.ID)+"/edit")
	f.fill(st)
	c.render(w, r, http.StatusOK, "form", view{Title: "Edit " + st.Label(), Session: s, Partition: p, Nav: "streams"}, f)
	return nil
}

func (c *Console) saveStream(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	id := r.PathValue("id")
	f := newForm(false, streamPath(p, id)+"/edit")
	f.read(r)
	var st streamView
	if err := c.submit(r, s, p, f, http.MethodPatch, "/streams/"+url.PathEscape(id), nil, &st); err != nil {
		return c.refuse(w, r, s, p, "Edit stream", f, err)
	}
	if st.Attributes.WebhookSecret != "" {
		return c.showStream(w, r, s, p, id, shown{notice: "Saved.", secret: st.Attributes.WebhookSecret})
	}
	http.Redirect(w, r, streamPath(p, id)+"?saved=1", http.StatusSeeOther)
	return nil
}

// setStatus is the pause / disable / activate buttons.
func (c *Console) setStatus(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	id := r.PathValue("id")
	status := r.PostFormValue("status")
	if !slices.Contains([]string{"active", "paused", "disabled"}, status) {
		return &apiError{Status: http.StatusBadRequest, Field: "status", Message: "must be active, paused or disabled"}
	}
	if err := c.call(r, s, p, http.MethodPatch, "/streams/"+url.PathEscape(id), nil, map[string]string{"status": status}, nil); err != nil {
		return err
	}
	http.Redirect(w, r, streamPath(p, id)+"?saved=1", http.StatusSeeOther)
	return nil
}

func (c *Console) deleteStream(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	id := r.PathValue("id")
	if err := c.call(r, s, p, http.MethodDelete, "/streams/"+url.PathEscape(id), nil, nil, nil); err != nil {
		return err
	}
	http.Redirect(w, r, streamsPath(p)+"?deleted="+url.QueryEscape(id), http.StatusSeeOther)
	return nil
}

// testResult is the API's answer to "send test event".
type testResult struct {
	StatusCode int     `json:"statusCode"`
	LatencyMs  float64 `json:"latencyMs"`
	Body       string  `json:"body"`
	Error      string  `json:"error"`
	DeliveryID string  `json:"deliveryId"`
}

// OK reports whether the endpoint answered 2xx.
func (t *testResult) OK() bool { return t.Error == "" && t.StatusCode >= 200 && t.StatusCode < 300 }

func (c *Console) testStream(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	id := r.PathValue("id")
	var res testResult
	if err := c.call(r, s, p, http.MethodPost, "/streams/"+url.PathEscape(id)+"/test", nil, map[string]any{}, &res); err != nil {
		return err
	}
	return c.showStream(w, r, s, p, id, shown{test: &res})
}

// rotateSecret is the "Rotate secret" button: the API generates a new signing secret (the old
// one keeps signing for its default overlap) and the page shows it this once.
func (c *Console) rotateSecret(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	id := r.PathValue("id")
	var st streamView
	if err := c.call(r, s, p, http.MethodPost, "/streams/"+url.PathEscape(id)+"/secret", nil, map[string]any{}, &st); err != nil {
		return err
	}
	return c.showStream(w, r, s, p, id, shown{notice: "New signing secret; the previous one keeps signing for the overlap (24 h by default).",
		secret: st.Attributes.WebhookSecret})
}

func (c *Console) streamPage(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	var once shown
	switch q := r.URL.Query(); {
	case q.Get("created") != "":
		once.notice = "Stream created."
	case q.Get("saved") != "":
		once.notice = "Saved."
	}
	return c.showStream(w, r, s, p, r.PathValue("id"), once)
}

// shown is what a stream page shows once, after an action: a notice, a test's result, or a
// secret the API generated (shown in this answer only, never stored by the console).
type shown struct {
	notice string
	test   *testResult
	secret string
}

// streamData is the stream page: the stream, its recent outcomes and their chart.
type streamData struct {
	Stream     *streamView
	Outcomes   []outcome
	Chart      chart
	Test       *testResult
	Delivered  int
	Failed     int
	Attempts   int
	Backlog    string
	Notice     string
	Secret     string
	SuccessPct string
}

func (c *Console) showStream(w http.ResponseWriter, r *http.Request, s *session, p, id string, once shown) error {
	st, err := c.loadStream(r, s, p, id)
	if err != nil {
		return err
	}
	var recent struct {
		Data []outcome `json:"data"`
	}
	// The API's newest 200 outcomes of the last 24 hours, oldest first.
	if err := c.call(r, s, p, http.MethodGet, "/streams/"+url.PathEscape(id)+"/deliveries", url.Values{"limit": {"200"}}, nil, &recent); err != nil {
		return err
	}
	d := &streamData{Stream: st, Test: once.test, Notice: once.notice, Secret: once.secret, Chart: newChart(recent.Data, time.Now()), Backlog: c.backlog(r.Context(), p, []string{id})[id]}
	d.Delivered, d.Failed = d.Chart.Delivered, d.Chart.Failed
	if d.Attempts = d.Delivered + d.Failed; d.Attempts > 0 {
		d.SuccessPct = percent(d.Delivered, d.Attempts)
	}
	slices.Reverse(recent.Data)
	d.Outcomes = recent.Data[:min(len(recent.Data), 50)]
	c.render(w, r, http.StatusOK, "stream", view{Title: st.Label(), Session: s, Partition: p, Nav: "streams"}, d)
	return nil
}
