package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"hookstream/pkg/auth"
	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// Seed 001's organization webhooks API, an adapter over the native streams: a webhook is an
// event-stream whose event type is the webhook's trigger. The organization is the token's
// partition (or orgId, which must be one the token allows); webhook ids are the streams' numbers
// (ids.go). Validation and storage are the native API's (create, patch, remove); this file
// translates names, enums and units.

const seed001Base = "/api/v1/organization/"

// Seed 001's limits.
const (
	seed001MaxName      = 100
	seed001MaxURL       = 512
	seed001MaxBody      = 1024
	seed001MaxReceivers = 10
	seed001MaxTrigger   = 4 << 10
)

// seed001Triggers are the triggers of seed 001: device lifecycle events, and the data triggers
// (datastream, log event) that need a dataTrigger.
var seed001Triggers = []string{
	"DEVICE_ADDED", "DEVICE_REMOVED", "DEVICE_UPDATED", "DEVICE_ONLINE", "DEVICE_OFFLINE",
	"DATASTREAM_UPDATED", "LOG_EVENT",
}

var seed001DataTriggers = []string{"DATASTREAM_UPDATED", "LOG_EVENT"}

// seed001ContentTypes maps seed 001's content types to the native ones.
var seed001ContentTypes = map[string]string{"JSON": proto.ContentJSON, "FORM": proto.ContentForm, "TEXT": proto.ContentText}

var seed001AuthTypes = []string{"NONE", "BASIC", "OAUTH2"}

// seed001Fields renames native field names in errors to seed 001's.
var seed001Fields = map[string]string{
	"webhookUrl": "url", "bodyTemplate": "body", "eventTypes": "trigger", "auth": "authType",
	"auth.tokenUrl": "oAuth2Request.tokenUrl", "auth.clientId": "oAuth2Request.clientId",
}

func (s *Service) seed001Routes(mux *http.ServeMux) {
	org := s.seed001Org
	mux.HandleFunc("GET "+seed001Base+"webhooks", s.guardWith(auth.ScopeStreamsRead, org, s.list001))
	mux.HandleFunc("GET "+seed001Base+"webhook", s.guardWith(auth.ScopeStreamsRead, org, s.get001))
	mux.HandleFunc("PUT "+seed001Base+"webhook", s.guardWith(auth.ScopeStreamsWrite, org, s.put001))
	mux.HandleFunc("DELETE "+seed001Base+"webhook", s.guardWith(auth.ScopeStreamsWrite, org, s.delete001))
	mux.HandleFunc("POST "+seed001Base+"webhook/create", s.guardWith(auth.ScopeStreamsWrite, org, s.create001))
}

// webhook001Body is seed 001's create and update body.
type webhook001Body struct {
	OrgID            *int64          `json:"orgId"`
	Name             *string         `json:"name"`
	Trigger          *string         `json:"trigger"`
	DataTrigger      json.RawMessage `json:"dataTrigger"`
	URL              *string         `json:"url"`
	Method           *string         `json:"method"`
	ContentType      *string         `json:"contentType"`
	AuthType         *string         `json:"authType"`
	Body             *string         `json:"body"`
	OAuth2Request    *authBody       `json:"oAuth2Request"`
	BasicAuth        *authBody       `json:"basicAuth"` // hookstream's: seed 001 names no field for BASIC credentials
	FailureReceivers *[]int64        `json:"failureReceivers"`
	Status           *string         `json:"status"`
	FailureLimit     *int            `json:"failureLimit"`
}

// webhook001 is seed 001's webhook.
type webhook001 struct {
	ID               int32           `json:"id"`
	Name             string          `json:"name"`
	Trigger          string          `json:"trigger"`
	DataTrigger      json.RawMessage `json:"dataTrigger,omitempty"`
	URL              string          `json:"url"`
	Method           string          `json:"method"`
	ContentType      string          `json:"contentType"`
	AuthType         string          `json:"authType"`
	Body             string          `json:"body,omitempty"`
	OAuth2Request    *authBody       `json:"oAuth2Request,omitempty"`
	FailureReceivers []int64         `json:"failureReceivers"`
	Status           string          `json:"status"`
	AttemptCount     int64           `json:"attemptCount"`
	CreatedAt        int64           `json:"createdAt"`
	LastModifiedTs   int64           `json:"lastModifiedTs"`
	LastTriggeredTs  int64           `json:"lastTriggeredTs,omitempty"`
	FailureLimit     int             `json:"failureLimit"`
}

// seed001Org is the organization of a seed 001 request: orgId (query, or the create body) when
// given, else the token's one partition.
func (s *Service) seed001Org(w http.ResponseWriter, r *http.Request, claims *auth.Claims) (string, error) {
	if q := r.URL.Query().Get("orgId"); q != "" {
		n, err := strconv.ParseInt(q, 10, 32)
		if err != nil || n <= 0 {
			return "", web.BadRequest("orgId", "must be a positive int32")
		}
		return strconv.FormatInt(n, 10), nil
	}
	if r.Method == http.MethodPost {
		if org, err := peekOrgID(w, r); err != nil || org != "" {
			return org, err
		}
	}
	own := slices.DeleteFunc(slices.Clone(claims.Partitions), func(p string) bool { return p == "*" })
	if len(own) != 1 || slices.Contains(claims.Partitions, "*") {
		return "", web.BadRequest("orgId", "is required: the token is valid for more than one organization")
	}
	return own[0], nil
}

// peekOrgID reads the orgId of a create body and puts the body back for the handler.
func peekOrgID(w http.ResponseWriter, r *http.Request) (string, error) {
	b, err := web.ReadBody(w, r)
	if err != nil {
		return "", err
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	var o struct {
		OrgID *int64 `json:"orgId"`
	}
	if json.Unmarshal(b, &o) != nil || o.OrgID == nil {
		return "", nil // the handler reports a malformed body
	}
	if *o.OrgID <= 0 || *o.OrgID > 1<<31-1 {
		return "", web.BadRequest("orgId", "must be a positive int32")
	}
	return strconv.FormatInt(*o.OrgID, 10), nil
}

// webhookID reads ?webhookId= and returns the stream it names in the partition.
func (s *Service) webhookID(r *http.Request, partition string) (string, error) {
	q := r.URL.Query().Get("webhookId")
	if q == "" {
		return "", web.BadRequest("webhookId", "is required")
	}
	n, err := strconv.ParseInt(q, 10, 32)
	if err != nil {
		return "", web.BadRequest("webhookId", "must be an int32, not %q", clip(q))
	}
	return s.streamOf(r.Context(), partition, n)
}

func (s *Service) create001(w http.ResponseWriter, r *http.Request, partition string) error {
	var b webhook001Body
	if err := web.DecodeJSON(w, r, &b); err != nil {
		return err
	}
	body, err := b.native(true)
	if err != nil {
		return err
	}
	def, _, err := s.create(w, r, partition, proto.TypeEventStream, body)
	if err != nil {
		return renameField(err, seed001Fields)
	}
	return s.write001(w, r, def, http.StatusOK)
}

func (s *Service) put001(w http.ResponseWriter, r *http.Request, partition string) error {
	id, err := s.webhookID(r, partition)
	if err != nil {
		return err
	}
	var b webhook001Body
	if err := web.DecodeJSON(w, r, &b); err != nil {
		return err
	}
	body, err := b.native(false)
	if err != nil {
		return err
	}
	def, _, err := s.patch(w, r, partition, id, body)
	if err != nil {
		return renameField(err, seed001Fields)
	}
	return s.write001(w, r, def, http.StatusOK)
}

func (s *Service) get001(w http.ResponseWriter, r *http.Request, partition string) error {
	id, err := s.webhookID(r, partition)
	if err != nil {
		return err
	}
	def, _, err := s.load(r.Context(), partition, id)
	if err != nil {
		return err
	}
	return s.write001(w, r, def, http.StatusOK)
}

func (s *Service) delete001(w http.ResponseWriter, r *http.Request, partition string) error {
	id, err := s.webhookID(r, partition)
	if err != nil {
		return err
	}
	if err := s.remove(r.Context(), partition, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// list001 answers every webhook of the organization, in creation order, as a JSON array.
func (s *Service) list001(w http.ResponseWriter, r *http.Request, partition string) error {
	out := []webhook001{}
	err := s.eachStream(r.Context(), partition, func(d *stream.Stream) error {
		wh, err := s.webhook001(r, d)
		out = append(out, wh)
		return err
	})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Service) write001(w http.ResponseWriter, r *http.Request, def *stream.Stream, status int) error {
	wh, err := s.webhook001(r, def)
	if err != nil {
		return err
	}
	web.WriteJSON(w, status, wh)
	return nil
}

// webhook001 is a stream in seed 001's shape.
func (s *Service) webhook001(r *http.Request, d *stream.Stream) (webhook001, error) {
	n, err := s.number(r.Context(), d.Partition, d.ID)
	if err != nil {
		return webhook001{}, err
	}
	wh := webhook001{
		ID: n, Name: d.Name, Trigger: trigger001(d), DataTrigger: d.DataTrigger, URL: d.WebhookURL, Method: d.Method,
		ContentType: "JSON", AuthType: strings.ToUpper(or(d.AuthType, proto.AuthNone)), Body: d.BodyTemplate,
		FailureReceivers: d.FailureReceivers, Status: status001(d.Status),
		CreatedAt: d.CreatedAt.UnixMilli(), LastModifiedTs: d.UpdatedAt.UnixMilli(), FailureLimit: d.FailureLimit,
	}
	for k, v := range seed001ContentTypes {
		if v == or(d.ContentType, proto.ContentJSON) {
			wh.ContentType = k
		}
	}
	if d.AuthType == proto.AuthOAuth2 {
		wh.OAuth2Request = &authBody{TokenURL: d.OAuth2TokenURL, ClientID: d.OAuth2ClientID, Scopes: d.OAuth2Scopes}
	}
	if wh.FailureReceivers == nil {
		wh.FailureReceivers = []int64{}
	}
	if st := s.targetState(r.Context(), d); st != nil {
		wh.AttemptCount = st.AttemptCount
		if st.LastTriggeredAt > 0 {
			wh.LastTriggeredTs = st.LastTriggeredAt / 1e6
		}
	}
	return wh, nil
}

// trigger001 is the trigger a stream shows: its one event type (a native stream with several
// shows the first; a point-stream shows DATASTREAM_UPDATED).
func trigger001(d *stream.Stream) string {
	if len(d.EventTypes) > 0 {
		return d.EventTypes[0]
	}
	return "DATASTREAM_UPDATED"
}

func status001(st stream.Status) string {
	switch st {
	case stream.Active:
		return "ENABLED"
	case stream.DisabledDueToErrors:
		return "DISABLED_DUE_TO_ERRORS"
	}
	return "DISABLED"
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// renameField renames the field of a native validation error to another platform's name
// (native ids[i] of a resend become event_ids[i]).
func renameField(err error, names map[string]string) error {
	var we *web.Error
	if !errors.As(err, &we) {
		return err
	}
	c := *we
	if f, ok := names[we.Field]; ok {
		c.Field = f
	} else if rest, ok := strings.CutPrefix(we.Field, "ids["); ok {
		c.Field = "event_ids[" + rest
	}
	return &c
}

// eachStream calls f with each stream of a partition, in creation order.
func (s *Service) eachStream(ctx context.Context, partition string, f func(*stream.Stream) error) error {
	after := ""
	for {
		ids, err := s.tally.idsAfter(ctx, partition, after, maxStreamsPage)
		if err != nil || len(ids) == 0 {
			return err
		}
		for _, id := range ids {
			d, _, err := s.load(ctx, partition, id)
			var we *web.Error
			if errors.As(err, &we) && we.Status == http.StatusNotFound {
				continue // deleted meanwhile
			}
			if err != nil {
				return err
			}
			if err := f(d); err != nil {
				return err
			}
		}
		after = ids[len(ids)-1]
	}
}

// native checks what seed 001 itself limits and returns the native body it means. On update
// (create false) the required fields are required too, as seed 001's PUT replaces the webhook;
// a status of DISABLED_DUE_TO_ERRORS is ignored.
func (b *webhook001Body) native(create bool) (*streamBody, error) {
	if string(bytes.TrimSpace(b.DataTrigger)) == "null" {
		b.DataTrigger = nil // null is "none", as an absent member
	}
	if err := b.checkRequired(); err != nil {
		return nil, err
	}
	if err := b.checkLimits(); err != nil {
		return nil, err
	}
	n := &streamBody{WebhookURL: b.URL, Name: b.Name, Method: b.Method, FailureLimit: b.FailureLimit}
	n.EventTypes = &[]string{*b.Trigger}
	ct := seed001ContentTypes[*b.ContentType]
	n.ContentType = &ct
	format, tpl := proto.FormatEnvelope, ""
	if b.Body != nil && *b.Body != "" {
		format, tpl = proto.FormatTemplate, *b.Body
	}
	n.Format, n.BodyTemplate = &format, &tpl
	auth, err := b.auth()
	if err != nil {
		return nil, err
	}
	n.Auth = auth
	if b.Status != nil {
		switch *b.Status {
		case "ENABLED":
			n.Status = valueOf(string(stream.Active))
		case "DISABLED":
			n.Status = valueOf(string(stream.Disabled))
		}
	}
	n.foreign = &foreignFields{DataTrigger: b.DataTrigger}
	if b.FailureReceivers != nil {
		n.foreign.FailureReceivers = slices.Clone(*b.FailureReceivers)
	}
	if !create && b.OrgID != nil {
		return nil, web.BadRequest("orgId", "is taken at create only")
	}
	return n, nil
}

func valueOf[T any](v T) *T { return &v }

// checkRequired refuses a body without seed 001's required fields.
func (b *webhook001Body) checkRequired() error {
	for _, f := range []struct {
		name string
		v    *string
	}{{"name", b.Name}, {"trigger", b.Trigger}, {"url", b.URL}, {"method", b.Method}, {"contentType", b.ContentType}, {"authType", b.AuthType}} {
		if f.v == nil {
			return web.BadRequest(f.name, "is required")
		}
	}
	return nil
}

// checkLimits applies seed 001's own limits and enums.
func (b *webhook001Body) checkLimits() error {
	switch {
	case utf8.RuneCountInString(*b.Name) > seed001MaxName:
		return web.BadRequest("name", "must be at most %d characters", seed001MaxName)
	case !slices.Contains(seed001Triggers, *b.Trigger):
		return web.BadRequest("trigger", "unknown trigger %q (supported: %s)", clip(*b.Trigger), strings.Join(seed001Triggers, ", "))
	case slices.Contains(seed001DataTriggers, *b.Trigger) && len(b.DataTrigger) == 0:
		return web.BadRequest("dataTrigger", "is required for trigger %s", *b.Trigger)
	case len(b.DataTrigger) > 0 && (len(b.DataTrigger) > seed001MaxTrigger || bytes.TrimSpace(b.DataTrigger)[0] != '{'):
		return web.BadRequest("dataTrigger", "must be a JSON object of at most %d bytes", seed001MaxTrigger)
	case len(*b.URL) > seed001MaxURL:
		return web.BadRequest("url", "must be at most %d characters", seed001MaxURL)
	case !slices.Contains(methods, *b.Method):
		return web.BadRequest("method", "must be one of %s", strings.Join(methods, ", "))
	case seed001ContentTypes[*b.ContentType] == "":
		return web.BadRequest("contentType", "must be JSON, FORM or TEXT")
	case !slices.Contains(seed001AuthTypes, *b.AuthType):
		return web.BadRequest("authType", "must be one of %s", strings.Join(seed001AuthTypes, ", "))
	case b.Body != nil && utf8.RuneCountInString(*b.Body) > seed001MaxBody:
		return web.BadRequest("body", "must be at most %d characters", seed001MaxBody)
	case b.FailureReceivers != nil && len(*b.FailureReceivers) > seed001MaxReceivers:
		return web.BadRequest("failureReceivers", "has %d user ids; at most %d are allowed", len(*b.FailureReceivers), seed001MaxReceivers)
	case b.Status != nil && !slices.Contains([]string{"ENABLED", "DISABLED", "DISABLED_DUE_TO_ERRORS"}, *b.Status):
		return web.BadRequest("status", "must be ENABLED or DISABLED")
	}
	return nil
}

// auth is the native auth option of authType and its credentials.
func (b *webhook001Body) auth() (*authBody, error) {
	switch *b.AuthType {
	case "BASIC":
		if b.BasicAuth == nil {
			return nil, web.BadRequest("basicAuth", "is required for authType BASIC: {\"username\", \"password\"}")
		}
		a := *b.BasicAuth
		a.Type = proto.AuthBasic
		return &a, nil
	case "OAUTH2":
		if b.OAuth2Request == nil {
			return nil, web.BadRequest("oAuth2Request", "is required for authType OAUTH2")
		}
		a := *b.OAuth2Request
		a.Type = proto.AuthOAuth2
		return &a, nil
	}
	if b.OAuth2Request != nil || b.BasicAuth != nil {
		return nil, web.BadRequest("authType", "is NONE, so oAuth2Request and basicAuth must be left out")
	}
	return &authBody{Type: proto.AuthNone}, nil
}
