package api

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"hookstream/pkg/outbound"
	"hookstream/pkg/retry"
	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// Limits on stream definitions.
const (
	MaxPointIDs     = 1000
	maxURLLen       = 2048
	maxSecretLen    = 512
	minSecretLen    = 1
	maxNameLen      = 200
	maxFailureLimit = 10_000
	maxInFlightCap  = 256
	maxRateCap      = 100_000
	minTimeoutMs    = 100
	maxTimeoutMs    = 60_000
)

// methods are the HTTP methods a stream may send with (seed 001's method enum).
var methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// streamBody is the JSON body of create and PATCH. Pointers tell "absent" from "zero".
type streamBody struct {
	WebhookURL     *string   `json:"webhookUrl"`
	PointIDs       *[]string `json:"pointIds"`
	WebhookSecret  *string   `json:"webhookSecret"`
	Name           *string   `json:"name"`
	Method         *string   `json:"method"`
	Format         *string   `json:"format"`
	Signature      *string   `json:"signature"`
	MaxRetry       *int      `json:"maxRetry"`
	FailureLimit   *int      `json:"failureLimit"`
	MaxInFlight    *int      `json:"maxInFlight"`
	MaxRate        *float64  `json:"maxRate"`
	TimeoutMs      *int      `json:"timeoutMs"`
	Ordered        *bool     `json:"ordered"`
	PropagateTrace *bool     `json:"propagateTrace"`
	Status         *string   `json:"status"`
	formatFields             // payload, auth and signing options: formats.go

	EventTypes *[]string            `json:"eventTypes"`
	Properties *map[string][]string `json:"properties"`
	Filter     *string              `json:"filter"`
	Deadband   *float64             `json:"deadband"`
	ChangeOnly *bool                `json:"changeOnly"`

	// foreign is what only the other platforms' adapters set (never native JSON): seed 001.go.
	foreign *foreignFields
}

// foreignFields are settings of the other platforms' APIs that hookstream keeps with a stream.
type foreignFields struct {
	FailureReceivers []int64
	DataTrigger      []byte
	DLQRetention     time.Duration
}

// apply validates the body and writes it onto def. create demands the required fields. The
// options are checked in a fixed order, so that a body with several faults is always refused
// naming the same one; def may be partly written when apply refuses.
func (b *streamBody) apply(def *stream.Stream, create bool, opts urlPolicy) *web.Error {
	if werr := b.applyTarget(def, create, opts); werr != nil {
		return werr
	}
	if werr := b.applyDelivery(def); werr != nil {
		return werr
	}
	if b.Status != nil {
		if st := stream.Status(*b.Status); !st.Settable() {
			return web.BadRequest("status", "must be %q, %q (hold deliveries until active again) or %q (send and keep nothing)",
				stream.Active, stream.Paused, stream.Disabled)
		}
		def.Status = stream.Status(*b.Status)
	}
	if werr := b.applyMatch(def, create); werr != nil { // event types, properties, filter, dead-band: match.go
		return werr
	}
	if b.foreign != nil {
		def.FailureReceivers, def.DataTrigger = b.foreign.FailureReceivers, b.foreign.DataTrigger
		if b.foreign.DLQRetention > 0 {
			def.DLQRetention = b.foreign.DLQRetention
		}
	}
	return b.applyFormats(def, opts) // format, signature, secret, auth, batch: formats.go
}

// applyTarget validates and applies where a stream sends and what it names: webhookUrl,
// pointIds, name and method.
func (b *streamBody) applyTarget(def *stream.Stream, create bool, opts urlPolicy) *web.Error {
	if b.WebhookURL == nil && create {
		return web.BadRequest("webhookUrl", "is required")
	}
	if b.WebhookURL != nil {
		if err := opts.check(*b.WebhookURL); err != nil {
			return err
		}
		def.WebhookURL = *b.WebhookURL
	}
	if b.PointIDs == nil && create && def.Type == proto.TypePointStream {
		return web.BadRequest("pointIds", "is required for a point-stream")
	}
	if b.PointIDs != nil {
		ids, err := checkPointIDs(*b.PointIDs, false)
		if err != nil {
			return err
		}
		def.PointIDs = ids
	}
	if b.Name != nil {
		if utf8.RuneCountInString(*b.Name) > maxNameLen || !utf8.ValidString(*b.Name) {
			return web.BadRequest("name", "must be valid UTF-8 of at most %d characters", maxNameLen)
		}
		def.Name = *b.Name
	}
	if b.Method != nil {
		m := strings.ToUpper(*b.Method)
		if !slices.Contains(methods, m) {
			return web.BadRequest("method", "must be one of %s", strings.Join(methods, ", "))
		}
		def.Method = m
	}
	return nil
}

// applyDelivery validates and applies how a stream is delivered: retries, the failure limit,
// concurrency, rate, timeout, order and trace propagation. It writes def only when every one
// is valid.
func (b *streamBody) applyDelivery(def *stream.Stream) *web.Error {
	switch {
	case outside(b.MaxRetry, 0, retry.MaxRetries):
		return web.BadRequest("maxRetry", "must be 0 to %d", retry.MaxRetries)
	case outside(b.FailureLimit, 0, maxFailureLimit):
		return web.BadRequest("failureLimit", "must be 1 to %d consecutive failed attempts, or 0 for none", maxFailureLimit)
	case outside(b.MaxInFlight, 1, maxInFlightCap):
		return web.BadRequest("maxInFlight", "must be 1 to %d", maxInFlightCap)
	case outside(b.MaxRate, 0, maxRateCap):
		return web.BadRequest("maxRate", "must be 0 (no limit) to %d deliveries per second", maxRateCap)
	case outside(b.TimeoutMs, minTimeoutMs, maxTimeoutMs):
		return web.BadRequest("timeoutMs", "must be %d to %d", minTimeoutMs, maxTimeoutMs)
	}
	set(&def.MaxRetry, b.MaxRetry)
	set(&def.FailureLimit, b.FailureLimit)
	set(&def.MaxInFlight, b.MaxInFlight)
	set(&def.MaxRate, b.MaxRate)
	set(&def.Ordered, b.Ordered)
	set(&def.PropagateTrace, b.PropagateTrace)
	if b.TimeoutMs != nil {
		def.Timeout = time.Duration(*b.TimeoutMs) * time.Millisecond
	}
	return nil
}

// outside reports whether an option was given (v is not nil) with a value outside lo to hi.
func outside[T int | float64](v *T, lo, hi T) bool { return v != nil && (*v < lo || *v > hi) }

// set writes an option onto its field when it was given (v is not nil).
func set[T any](field *T, v *T) {
	if v != nil {
		*field = *v
	}
}

// checkPointIDs validates a list of point ids: non-empty unless allowEmpty, valid tokens, no
// duplicates, at most MaxPointIDs.
func checkPointIDs(ids []string, allowEmpty bool) ([]string, *web.Error) {
	if len(ids) == 0 && !allowEmpty {
		return nil, web.BadRequest("pointIds", "must be a non-empty array of point ids")
	}
	if len(ids) > MaxPointIDs {
		return nil, web.BadRequest("pointIds", "has %d entries; at most %d are allowed per stream", len(ids), MaxPointIDs)
	}
	seen := make(map[string]struct{}, len(ids))
	for i, id := range ids {
		if !proto.ValidToken(id) {
			return nil, web.BadRequest(fmt.Sprintf("pointIds[%d]", i), "%q is not a valid point id (1-128 of A-Z a-z 0-9 - _ : @ ~ + = %%)", clip(id))
		}
		if _, dup := seen[id]; dup {
			return nil, web.BadRequest(fmt.Sprintf("pointIds[%d]", i), "duplicate point id %q", id)
		}
		seen[id] = struct{}{}
	}
	return slices.Clone(ids), nil
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// urlPolicy decides which webhook URLs are accepted at create and update time. The delivery
// dialer checks the resolved address again at every connection.
type urlPolicy struct {
	// AllowHTTP accepts plain http URLs (always in --dev).
	AllowHTTP bool
	// AllowPrivate accepts loopback and private literal addresses (--dev).
	AllowPrivate bool
	// Guard judges the host (literal addresses, numeric forms, localhost); nil means the
	// default deny list with no allow-list.
	Guard *outbound.Guard
}

func (p urlPolicy) check(raw string) *web.Error {
	if raw == "" {
		return web.BadRequest("webhookUrl", "is required")
	}
	if len(raw) > maxURLLen {
		return web.BadRequest("webhookUrl", "is longer than %d characters", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return web.BadRequest("webhookUrl", "must be an absolute http(s) URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return web.BadRequest("webhookUrl", "must use https (plain http only with --dev or --allow-http)")
		}
	default:
		return web.BadRequest("webhookUrl", "scheme %q is not allowed; use https", u.Scheme)
	}
	if u.User != nil {
		return web.BadRequest("webhookUrl", "must not contain credentials; use the auth settings")
	}
	if u.Fragment != "" {
		return web.BadRequest("webhookUrl", "must not contain a fragment")
	}
	if h := strings.TrimSuffix(u.Hostname(), "."); h == "" || strings.Contains(h, "..") || strings.HasPrefix(h, ".") {
		return web.BadRequest("webhookUrl", "host %q is malformed (an empty label)", clip(u.Hostname()))
	}
	if !p.AllowPrivate {
		g := p.Guard
		if g == nil {
			g = outbound.New(outbound.Config{})
		}
		if err := g.CheckHost(u.Hostname()); err != nil {
			return web.BadRequest("webhookUrl", "%v (private addresses only with --dev or --allow-cidr)", err)
		}
	}
	return nil
}
