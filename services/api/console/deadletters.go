package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
)

// deadLetterView is a dead letter as the API answers it.
type deadLetterView struct {
	ID             string `json:"id"`
	DeliveryID     string `json:"deliveryId"`
	StreamID       string `json:"streamId"`
	URL            string `json:"url"`
	Reason         string `json:"reason"`
	DeadLetteredAt string `json:"deadLetteredAt"`
	Resends        int    `json:"resends"`
	BodyBytes      int    `json:"bodyBytes"`
	Attempts       []struct {
		At         string  `json:"at"`
		StatusCode int     `json:"statusCode"`
		Error      string  `json:"error"`
		LatencyMs  float64 `json:"latencyMs"`
	} `json:"attempts"`
	Request *struct {
		Method        string            `json:"method"`
		URL           string            `json:"url"`
		Headers       map[string]string `json:"headers"`
		Body          string            `json:"body"`
		BodyEncoding  string            `json:"bodyEncoding"`
		BodyTruncated bool              `json:"bodyTruncated"`
	} `json:"request"`
}

// LastStatus is the last attempt's HTTP status or error.
func (d *deadLetterView) LastStatus() string {
	if len(d.Attempts) == 0 {
		return "never attempted"
	}
	a := d.Attempts[len(d.Attempts)-1]
	if a.StatusCode > 0 {
		return "HTTP " + strconv.Itoa(a.StatusCode)
	}
	return a.Error
}

// deadLettersData is the dead-letters page: the filter, a page of entries, and what a resend did
// or why it was refused.
type deadLettersData struct {
	StreamID, Since, Cursor string
	Data                    []deadLetterView `json:"data"`
	Next                    string           `json:"next"`
	Resent                  string
	Error                   *apiError
}

// FilterErr is the API's refusal of a filter input (streamId, since), shown next to it.
func (d *deadLettersData) FilterErr(name string) string {
	if d.Error != nil && d.Error.Field == name {
		return d.Error.Message
	}
	return ""
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	return c.showDeadLetters(w, r, s, p, http.StatusOK, nil)
}

func (c *Console) showDeadLetters(w http.ResponseWriter, r *http.Request, s *session, p string, status int, refused *apiError) error {
	in := r.URL.Query()
	if r.Method == http.MethodPost {
		in = url.Values{"streamId": {r.PostFormValue("streamId")}}
	}
	d := &deadLettersData{StreamID: in.Get("streamId"), Since: in.Get("since"), Cursor: in.Get("cursor"), Resent: in.Get("resent"), Error: refused}
	q := url.Values{"limit": {listPage}}
	for _, k := range []string{"streamId", "since", "cursor"} {
		if v := in.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	err := c.call(r, s, p, http.MethodGet, "/dead-letters", q, nil, d)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest && refused == nil {
		// A filter the API refuses is shown next to its input, with no entries.
		d.Error, status = ae, ae.Status
	} else if err != nil {
		return err
	}
	c.render(w, r, status, "deadletters", view{Title: "Dead letters", Session: s, Partition: p, Nav: "dead-letters"}, d)
	return nil
}

func (c *Console) deadLetter(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	var d deadLetterView
	if err := c.call(r, s, p, http.MethodGet, "/dead-letters/"+url.PathEscape(r.PathValue("id")), nil, nil, &d); err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "deadletter", view{Title: "Dead letter " + d.ID, Session: s, Partition: p, Nav: "dead-letters"}, &d)
	return nil
}

// resend is the dead-letters page's buttons: one entry ("one"), the selected ones ("ids"), or
// all of the filtered stream ("all"). A refusal is shown on the page with the API's status.
func (c *Console) resend(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	body := map[string]any{}
	switch {
	case r.PostFormValue("one") != "":
		body["ids"] = []string{r.PostFormValue("one")}
	case r.PostFormValue("all") != "":
		body["streamId"], body["all"] = r.PostFormValue("streamId"), true
	default:
		body["ids"] = r.PostForm["ids"]
	}
	var res struct {
		Resent int `json:"resent"`
	}
	err := c.call(r, s, p, http.MethodPost, "/dead-letters/resend", nil, body, &res)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusUnauthorized && ae.Status != http.StatusForbidden {
		return c.showDeadLetters(w, r, s, p, ae.Status, ae)
	}
	if err != nil {
		return err
	}
	back := url.Values{"resent": {strconv.Itoa(res.Resent)}}
	if id := r.PostFormValue("streamId"); id != "" {
		back.Set("streamId", id)
	}
	http.Redirect(w, r, "/console/p/"+url.PathEscape(p)+"/dead-letters?"+back.Encode(), http.StatusSeeOther)
	return nil
}

// usageData is the partition's usage against its quotas, as the API answers it.
type usageData struct {
	Partition    string  `json:"partition"`
	Period       string  `json:"period"`
	PeriodStart  string  `json:"periodStart"`
	ResetsAt     string  `json:"resetsAt"`
	OnExceed     string  `json:"onExceed"`
	Limits       string  `json:"limits"`
	Streams      counter `json:"streams"`
	StreamPoints counter `json:"streamPoints"`
	Deliveries   counter `json:"deliveries"`
	PayloadBytes counter `json:"payloadBytes"`
}

// counter is one quota: used, and the limit (nil: unlimited).
type counter struct {
	Used  int64  `json:"used"`
	Limit *int64 `json:"limit"`
}

// Pct is the share of the limit used, 0 to 100, for the meter (0 when unlimited).
func (c counter) Pct() int64 {
	if c.Limit == nil || *c.Limit <= 0 {
		return 0
	}
	return min(100, c.Used*100 / *c.Limit)
}

// Max is the limit as text.
func (c counter) Max() string {
	if c.Limit == nil || *c.Limit == 0 {
		return "unlimited"
	}
	return strconv.FormatInt(*c.Limit, 10)
}

func (c *Console) usage(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	var u usageData
	if err := c.call(r, s, p, http.MethodGet, "/usage", nil, nil, &u); err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "usage", view{Title: "Usage", Session: s, Partition: p, Nav: "usage"}, &u)
	return nil
}

// quotaRow is one line of the usage table.
type quotaRow struct {
	Name string
	counter
}

// Rows are the usage table's lines.
func (u *usageData) Rows() []quotaRow {
	return []quotaRow{{"Streams", u.Streams}, {"Point ids of all streams", u.StreamPoints},
		{"Deliveries this period", u.Deliveries}, {"Payload bytes this period", u.PayloadBytes}}
}
