package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"

	graphql "github.com/graph-gophers/graphql-go"

	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// Resolvers of seed 002's schema (seed002_schema.graphql). A target is an event-stream: name,
// enabled (status active or disabled), maxRetry, contentMode (none: format timeseries, seed
// 002's plain payload; STRUCTURED: cloudevents; BINARY: cloudevents-binary), the filter, the
// CloudEvents extensions, the URL, method, auth (none or basic) and hmac256 (the hub-sha256
// secret). Validation and storage are the native API's (create, patch, remove).

// seed002Methods are the methods of seed 002's enum hookstream sends with; HEAD, CONNECT,
// OPTIONS and TRACE carry no body and are refused.
var seed002Methods = methods

type gqlRoot struct{ s *Service }

// Output types (graphql.UseFieldResolvers binds fields by name).
type (
	gqlTarget struct {
		ID              graphql.ID
		Name            string
		Enabled         bool
		MaxRetry        int32
		ContentMode     *string
		EventFilters    *gqlFilters
		EventExtensions []gqlExtension
		HttpTarget      gqlHTTPTarget
	}
	gqlFilters struct {
		JsonExpressionFilter *gqlJSONFilter
	}
	gqlJSONFilter struct {
		JsonPathExpression string
	}
	gqlExtension struct {
		Name        string
		BoolValue   *bool
		StringValue *string
		IntValue    *int32
	}
	gqlHTTPTarget struct {
		Method    string
		TargetUri string
		Auth      gqlAuth
		Hmac256   *string
	}
	gqlAuth struct {
		NoAuth *bool
		Basic  *gqlBasic
	}
	gqlBasic struct {
		Username string
		Password *string
	}
	gqlPayload struct {
		Target *gqlTarget
	}
	gqlDeleted struct {
		Done *bool `graphql:"_"`
	}
)

// Input types.
type (
	targetInput struct {
		ID              graphql.ID // update only
		Name            *string
		Enabled         *bool
		MaxRetry        *int32
		ContentMode     *struct{ Value *string }
		EventFilters    *filtersInput
		EventExtensions *[]extensionInput
		HttpTarget      *httpTargetInput
	}
	// targetCreate is targetInput with the fields create requires.
	targetCreate struct {
		Name            string
		Enabled         bool  // default true
		MaxRetry        int32 // default 5
		ContentMode     *struct{ Value *string }
		EventFilters    filtersInput
		EventExtensions *[]extensionInput
		HttpTarget      struct {
			Method    string // default POST
			TargetUri string
			Auth      *authInput
			Hmac256   *string
		}
	}
	filtersInput struct {
		JsonExpressionFilter struct{ JsonPathExpression string }
	}
	extensionInput struct {
		Name        string
		BoolValue   *bool
		StringValue *string
		IntValue    *int32
	}
	httpTargetInput struct {
		Method    *string
		TargetUri *string
		Auth      *authInput
		Hmac256   *string
	}
	authInput struct {
		NoAuth *bool
		Basic  *struct{ Username, Password string }
	}
)

// WebhookTargets lists the partition's targets (every stream), in creation order.
func (g *gqlRoot) WebhookTargets(ctx context.Context) ([]*gqlTarget, error) {
	q := gqlRequestOf(ctx)
	out := []*gqlTarget{}
	err := g.s.eachStream(ctx, q.partition, func(d *stream.Stream) error {
		out = append(out, targetOf(d))
		return nil
	})
	return out, err
}

// WebhookTarget is one target, or null.
func (g *gqlRoot) WebhookTarget(ctx context.Context, args struct{ ID graphql.ID }) (*gqlTarget, error) {
	q := gqlRequestOf(ctx)
	id, ok := streamIDOf(string(args.ID))
	if !ok {
		return nil, nil
	}
	d, _, err := g.s.load(ctx, q.partition, id)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return targetOf(d), nil
}

// CreateWebhookTarget creates an event-stream from the target.
func (g *gqlRoot) CreateWebhookTarget(ctx context.Context, args struct{ Input struct{ Target targetCreate } }) (*gqlPayload, error) {
	q, err := requireWrite(ctx)
	if err != nil {
		return nil, err
	}
	c := args.Input.Target
	h := c.HttpTarget
	t := targetInput{
		Name: &c.Name, Enabled: &c.Enabled, MaxRetry: &c.MaxRetry, ContentMode: c.ContentMode, EventFilters: &c.EventFilters,
		EventExtensions: c.EventExtensions,
		HttpTarget:      &httpTargetInput{Method: &h.Method, TargetUri: &h.TargetUri, Auth: h.Auth, Hmac256: h.Hmac256},
	}
	body, err := t.native(true)
	if err != nil {
		return nil, gqlErr(err)
	}
	def, _, err := g.s.create(q.w, q.r, q.partition, proto.TypeEventStream, body)
	if err != nil {
		return nil, gqlErr(err)
	}
	return &gqlPayload{Target: targetOf(def)}, nil
}

// UpdateWebhookTarget changes what the input names; the rest stays.
func (g *gqlRoot) UpdateWebhookTarget(ctx context.Context, args struct{ Input struct{ Target targetInput } }) (*gqlPayload, error) {
	q, err := requireWrite(ctx)
	if err != nil {
		return nil, err
	}
	t := args.Input.Target
	id, err := streamOfTarget(&t.ID)
	if err != nil {
		return nil, err
	}
	body, err := t.native(false)
	if err != nil {
		return nil, gqlErr(err)
	}
	def, _, err := g.s.patch(q.w, q.r, q.partition, id, body)
	if err != nil {
		return nil, gqlErr(notFoundTarget(err, &t.ID))
	}
	return &gqlPayload{Target: targetOf(def)}, nil
}

// DeleteWebhookTarget deletes the target's stream.
func (g *gqlRoot) DeleteWebhookTarget(ctx context.Context, args struct{ Input struct{ ID graphql.ID } }) (*gqlDeleted, error) {
	q, err := requireWrite(ctx)
	if err != nil {
		return nil, err
	}
	id, err := streamOfTarget(&args.Input.ID)
	if err != nil {
		return nil, err
	}
	if err := g.s.remove(ctx, q.partition, id); err != nil {
		return nil, gqlErr(notFoundTarget(err, &args.Input.ID))
	}
	done := true
	return &gqlDeleted{Done: &done}, nil
}

func streamOfTarget(id *graphql.ID) (string, error) {
	if id == nil {
		return "", &gqlError{msg: "id: is required", code: "invalid_request", field: "id"}
	}
	sid, ok := streamIDOf(string(*id))
	if !ok {
		return "", notFoundTarget(web.NotFound(""), id)
	}
	return sid, nil
}

func isNotFound(err error) bool {
	var we *web.Error
	return errors.As(err, &we) && we.Status == http.StatusNotFound
}

// notFoundTarget names the target a 404 is about, by its seed 002 id.
func notFoundTarget(err error, id *graphql.ID) error {
	if !isNotFound(err) {
		return err
	}
	return &gqlError{msg: "webhook target " + strconv.Quote(string(*id)) + " not found", code: "not_found", field: "id"}
}

// native checks what seed 002 itself limits and returns the native body the input means.
func (t *targetInput) native(create bool) (*streamBody, error) {
	n := &streamBody{Name: t.Name}
	if create {
		if t.Name == nil || *t.Name == "" {
			return nil, web.BadRequest("name", "is required")
		}
		if t.HttpTarget == nil || t.HttpTarget.TargetUri == nil {
			return nil, web.BadRequest("webhookUrl", "is required")
		}
		if t.EventFilters == nil {
			return nil, &web.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "eventFilters", Message: "is required"}
		}
	}
	if t.MaxRetry != nil {
		m := int(*t.MaxRetry)
		n.MaxRetry = &m
	}
	if t.Enabled != nil {
		st := string(stream.Active)
		if !*t.Enabled {
			st = string(stream.Disabled)
		}
		n.Status = &st
	}
	if t.EventFilters != nil {
		f := t.EventFilters.JsonExpressionFilter.JsonPathExpression
		if f == "" {
			return nil, web.BadRequest("filter", "must not be empty")
		}
		n.Filter = &f
	}
	if t.ContentMode != nil || create {
		format := proto.FormatTimeseries
		if t.ContentMode != nil && t.ContentMode.Value != nil {
			format = map[string]string{"STRUCTURED": proto.FormatCloudEvents, "BINARY": proto.FormatCloudEventsBinary}[*t.ContentMode.Value]
		}
		n.Format = &format
	}
	if t.EventExtensions != nil {
		ext, err := extensionsOf(*t.EventExtensions)
		if err != nil {
			return nil, err
		}
		n.Extensions = &ext
	}
	if t.HttpTarget != nil {
		if err := t.HttpTarget.native(n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// native writes the HTTP target's settings onto n.
func (h *httpTargetInput) native(n *streamBody) error {
	n.WebhookURL = h.TargetUri
	if h.Method != nil {
		if !slices.Contains(seed002Methods, *h.Method) {
			return web.BadRequest("method", "%s is not supported: hookstream sends with GET, POST, PUT, PATCH or DELETE", *h.Method)
		}
		n.Method = h.Method
	}
	if h.Hmac256 != nil {
		sig := proto.SignatureHubSHA256
		n.WebhookSecret, n.Signature = h.Hmac256, &sig
	}
	if a := h.Auth; a != nil {
		switch {
		case a.Basic != nil && a.NoAuth != nil && *a.NoAuth:
			return web.BadRequest("auth", "give noAuth or basic, not both")
		case a.Basic != nil:
			n.Auth = &authBody{Type: proto.AuthBasic, Username: a.Basic.Username, Password: a.Basic.Password}
		case a.NoAuth != nil && *a.NoAuth:
			n.Auth = &authBody{Type: proto.AuthNone}
		default:
			return web.BadRequest("auth", "give noAuth: true or basic {username, password}")
		}
	}
	return nil
}

// extensionsOf turns seed 002's extensions into the native map, each with exactly one value.
func extensionsOf(in []extensionInput) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(in))
	for _, e := range in {
		field := "extensions." + clip(e.Name)
		var v any
		count := 0
		if e.BoolValue != nil {
			v, count = *e.BoolValue, count+1
		}
		if e.StringValue != nil {
			v, count = *e.StringValue, count+1
		}
		if e.IntValue != nil {
			v, count = *e.IntValue, count+1
		}
		if count != 1 {
			return nil, web.BadRequest(field, "give exactly one of boolValue, stringValue, intValue")
		}
		if _, dup := out[e.Name]; dup {
			return nil, web.BadRequest(field, "is given twice")
		}
		out[e.Name], _ = json.Marshal(v)
	}
	return out, nil
}

// targetOf is a stream in seed 002's shape.
func targetOf(d *stream.Stream) *gqlTarget {
	t := &gqlTarget{
		ID: graphql.ID(targetID(d.ID)), Name: d.Name, Enabled: d.Status.Delivers(), MaxRetry: int32(d.MaxRetry),
		EventExtensions: []gqlExtension{},
		HttpTarget:      gqlHTTPTarget{Method: d.Method, TargetUri: d.WebhookURL},
	}
	switch d.Format {
	case proto.FormatCloudEvents:
		t.ContentMode = valueOf("STRUCTURED")
	case proto.FormatCloudEventsBinary:
		t.ContentMode = valueOf("BINARY")
	}
	if d.Filter != "" {
		t.EventFilters = &gqlFilters{JsonExpressionFilter: &gqlJSONFilter{JsonPathExpression: d.Filter}}
	}
	for _, name := range sortedNames(d.Extensions) {
		e := gqlExtension{Name: name}
		switch v := d.Extensions[name].(type) {
		case bool:
			e.BoolValue = &v
		case string:
			e.StringValue = &v
		case int64:
			e.IntValue = valueOf(int32(v))
		}
		t.EventExtensions = append(t.EventExtensions, e)
	}
	switch d.AuthType {
	case proto.AuthBasic:
		t.HttpTarget.Auth.Basic = &gqlBasic{Username: d.AuthUsername}
	case "", proto.AuthNone:
		t.HttpTarget.Auth.NoAuth = valueOf(true)
	default:
		t.HttpTarget.Auth.NoAuth = valueOf(false)
	}
	if d.HasSecret {
		t.HttpTarget.Hmac256 = valueOf("********")
	}
	return t
}

func sortedNames(m map[string]any) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}
