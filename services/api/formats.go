package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"hookstream/pkg/signing"
	"hookstream/pkg/stream"
	"hookstream/pkg/tmpl"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// Limits of the payload options.
const (
	maxExtensions    = 32
	maxBatchEvents   = 1000
	maxBatchWaitMs   = 10_000 // half the signer's 20 s AckWait on held jobs
	minBatchBytes    = 1 << 10
	maxBatchBytes    = 512 << 10 // OUTBOX holds messages up to 1 MiB
	maxMetaString    = 200
	maxAuthField     = 1024
	maxScopes        = 32
	defaultBatchWait = 1000
)

var formats = []string{
	proto.FormatPoint, proto.FormatTimeseries, proto.FormatCloudEvents, proto.FormatCloudEventsBinary,
	proto.FormatMeasurements, proto.FormatMeasurementsCompact, proto.FormatEnvelope, proto.FormatTemplate,
}

var signatures = []string{
	proto.SignatureHubSHA256, proto.SignatureHubSHA1, proto.SignatureStandardWebhooks, proto.SignatureStandardWebhooksEd25519,
}

// authBody is the "auth" option: {"type": "none"|"basic"|"header"|"oauth2", …}.
type authBody struct {
	Type         string   `json:"type"`
	Username     string   `json:"username,omitempty"`
	Password     string   `json:"password,omitempty"`
	Name         string   `json:"name,omitempty"`
	Value        string   `json:"value,omitempty"`
	TokenURL     string   `json:"tokenUrl,omitempty"`
	ClientID     string   `json:"clientId,omitempty"`
	ClientSecret string   `json:"clientSecret,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
}

// pointMetaBody is one entry of "pointMeta".
type pointMetaBody struct {
	Datatype   *int64          `json:"datatype,omitempty"`
	Label      string          `json:"label,omitempty"`
	Unit       string          `json:"unit,omitempty"`
	Icon       string          `json:"icon,omitempty"`
	Group      string          `json:"group,omitempty"`
	Device     string          `json:"device,omitempty"`
	Container  string          `json:"container,omitempty"`
	Key        string          `json:"key,omitempty"`
	ValueGroup string          `json:"valueGroup,omitempty"`
	Asset      json.RawMessage `json:"asset,omitempty"`
	UnitRef    json.RawMessage `json:"unitRef,omitempty"`
}

// formatFields are the payload, auth and signing options of streamBody (issue 7).
type formatFields struct {
	ContentType  *string                     `json:"contentType"`
	BodyTemplate *string                     `json:"bodyTemplate"`
	Extensions   *map[string]json.RawMessage `json:"extensions"`
	Grouped      *bool                       `json:"grouped"`
	Batch        *proto.Batch                `json:"batch"`
	PointMeta    *map[string]pointMetaBody   `json:"pointMeta"`
	Auth         *authBody                   `json:"auth"`
}

var ceExtName = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// ceReserved are CloudEvents context attribute names an extension cannot take.
var ceReserved = []string{"specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time", "data", "data_base64"}

// applyFormats validates the format, signature and auth options of a create or PATCH body, writes
// them onto def, and checks that the resulting stream is consistent.
func (b *streamBody) applyFormats(def *stream.Stream, opts urlPolicy) *web.Error {
	if werr := b.applyPayload(def); werr != nil {
		return werr
	}
	if werr := b.applyExtras(def, opts); werr != nil {
		return werr
	}
	return checkConsistent(def)
}

// applyPayload validates and applies the format, the signature scheme and its secret, the
// content type and the body template.
func (b *streamBody) applyPayload(def *stream.Stream) *web.Error {
	if b.Format != nil {
		if !slices.Contains(formats, *b.Format) {
			return web.BadRequest("format", "unknown format %q (supported: %s)", clip(*b.Format), strings.Join(formats, ", "))
		}
		def.Format = *b.Format
	}
	if b.Signature != nil {
		if !slices.Contains(signatures, *b.Signature) {
			return web.BadRequest("signature", "unknown scheme %q (supported: %s)", clip(*b.Signature), strings.Join(signatures, ", "))
		}
		def.Signature = *b.Signature
	}
	if b.WebhookSecret != nil {
		if err := checkSecret(def.Signature, *b.WebhookSecret); err != nil {
			return err
		}
	}
	if b.ContentType != nil {
		ct := strings.ToLower(*b.ContentType)
		if ct != proto.ContentJSON && ct != proto.ContentForm && ct != proto.ContentText {
			return web.BadRequest("contentType", "must be json, form or text")
		}
		def.ContentType = ct
	}
	set(&def.BodyTemplate, b.BodyTemplate)
	return nil
}

// applyExtras validates and applies the CloudEvents extensions, grouping, batching, point
// metadata and outbound auth.
func (b *streamBody) applyExtras(def *stream.Stream, opts urlPolicy) *web.Error {
	if b.Extensions != nil {
		ext, err := checkExtensions(*b.Extensions)
		if err != nil {
			return err
		}
		def.Extensions = ext
	}
	set(&def.Grouped, b.Grouped)
	if b.Batch != nil {
		bt, err := checkBatch(*b.Batch)
		if err != nil {
			return err
		}
		def.Batch = bt
	}
	if b.PointMeta != nil {
		pm, err := checkPointMeta(*b.PointMeta)
		if err != nil {
			return err
		}
		def.PointMeta = pm
	}
	if b.Auth != nil {
		return applyAuth(def, b.Auth, opts)
	}
	return nil
}

// checkBatch validates a batch option and fills in the defaults of what it leaves out.
func checkBatch(bt proto.Batch) (*proto.Batch, *web.Error) {
	switch {
	case bt.MaxEvents < 0 || bt.MaxEvents > maxBatchEvents:
		return nil, web.BadRequest("batch.maxEvents", "must be 1 to %d", maxBatchEvents)
	case bt.MaxWaitMs < 0 || bt.MaxWaitMs > maxBatchWaitMs:
		return nil, web.BadRequest("batch.maxWaitMs", "must be 0 to %d", maxBatchWaitMs)
	case bt.MaxBytes != 0 && (bt.MaxBytes < minBatchBytes || bt.MaxBytes > maxBatchBytes):
		return nil, web.BadRequest("batch.maxBytes", "must be %d to %d", minBatchBytes, maxBatchBytes)
	}
	if bt.MaxEvents == 0 {
		bt.MaxEvents = 100
	}
	if bt.MaxWaitMs == 0 {
		bt.MaxWaitMs = defaultBatchWait
	}
	if bt.MaxBytes == 0 {
		bt.MaxBytes = 256 << 10
	}
	return &bt, nil
}

// checkConsistent checks the options that depend on each other, on the stream as it would be.
func checkConsistent(def *stream.Stream) *web.Error {
	ctx := tmpl.JSON
	switch def.ContentType {
	case proto.ContentForm:
		ctx = tmpl.Form
	case proto.ContentText:
		ctx = tmpl.Text
	}
	if def.Format == proto.FormatTemplate {
		if def.BodyTemplate == "" {
			return web.BadRequest("bodyTemplate", "is required for format template")
		}
		if _, err := tmpl.Parse(def.BodyTemplate, ctx); err != nil {
			return web.BadRequest("bodyTemplate", "%v", err)
		}
	} else if def.ContentType != "" && def.ContentType != proto.ContentJSON {
		return web.BadRequest("contentType", "format %s is JSON; form and text need format template", def.Format)
	}
	if strings.Contains(def.WebhookURL, "{") {
		if _, err := tmpl.ParseURL(def.WebhookURL); err != nil {
			return web.BadRequest("webhookUrl", "%v", err)
		}
	}
	if def.Batch != nil {
		ok := def.Format == proto.FormatMeasurements || def.Format == proto.FormatMeasurementsCompact ||
			def.Format == proto.FormatEnvelope && def.Grouped
		if !ok {
			return web.BadRequest("batch", "batching needs format measurements, measurements-compact or envelope with grouped: true")
		}
	}
	if len(def.Extensions) > 0 && def.Format != proto.FormatCloudEvents && def.Format != proto.FormatCloudEventsBinary {
		return web.BadRequest("extensions", "extensions need format cloudevents or cloudevents-binary")
	}
	return nil
}

// checkSecret validates a user-given secret for a scheme.
func checkSecret(scheme, secret string) *web.Error {
	switch scheme {
	case proto.SignatureStandardWebhooks:
		if _, err := signing.ParseStandardSecret(secret); err != nil {
			return web.BadRequest("webhookSecret", "%v", err)
		}
	case proto.SignatureStandardWebhooksEd25519:
		if _, err := signing.ParseEd25519Secret(secret); err != nil {
			return web.BadRequest("webhookSecret", "%v", err)
		}
	default:
		if n := utf8.RuneCountInString(secret); n < minSecretLen || n > maxSecretLen {
			return web.BadRequest("webhookSecret", "must be 1 to %d characters", maxSecretLen)
		}
	}
	return nil
}

func checkExtensions(in map[string]json.RawMessage) (map[string]any, *web.Error) {
	if len(in) > maxExtensions {
		return nil, web.BadRequest("extensions", "at most %d extensions", maxExtensions)
	}
	out := make(map[string]any, len(in))
	for name, raw := range in {
		field := "extensions." + clip(name)
		if !ceExtName.MatchString(name) || slices.Contains(ceReserved, name) {
			return nil, web.BadRequest(field, "an extension name is 1-20 lower-case letters or digits and not a CloudEvents attribute")
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, web.BadRequest(field, "invalid value")
		}
		switch x := v.(type) {
		case string:
			if len(x) > maxAuthField {
				return nil, web.BadRequest(field, "longer than %d bytes", maxAuthField)
			}
			out[name] = x
		case bool:
			out[name] = x
		case json.Number:
			n, err := x.Int64()
			if err != nil || n < -1<<31 || n > 1<<31-1 {
				return nil, web.BadRequest(field, "a number must be a 32-bit integer (CloudEvents Integer)")
			}
			out[name] = n
		default:
			return nil, web.BadRequest(field, "must be a string, an integer or a boolean")
		}
	}
	return out, nil
}

func checkPointMeta(in map[string]pointMetaBody) (map[string]proto.PointMeta, *web.Error) {
	if len(in) > MaxPointIDs {
		return nil, web.BadRequest("pointMeta", "at most %d entries", MaxPointIDs)
	}
	out := make(map[string]proto.PointMeta, len(in))
	for pid, m := range in {
		field := "pointMeta." + clip(pid)
		if !proto.ValidToken(pid) {
			return nil, web.BadRequest(field, "%q is not a valid point id", clip(pid))
		}
		for _, s := range []string{m.Label, m.Unit, m.Icon, m.Group, m.Device, m.Container, m.Key, m.ValueGroup} {
			if len(s) > maxMetaString {
				return nil, web.BadRequest(field, "strings are at most %d bytes", maxMetaString)
			}
		}
		for _, raw := range []json.RawMessage{m.Asset, m.UnitRef} {
			if len(raw) > 0 && (len(raw) > 4096 || !isObject(raw)) {
				return nil, web.BadRequest(field, "asset and unitRef must be JSON objects of at most 4 KiB")
			}
		}
		out[pid] = proto.PointMeta{
			Datatype: m.Datatype, Label: m.Label, Unit: m.Unit, Icon: m.Icon, Group: m.Group, Device: m.Device,
			Container: m.Container, Key: m.Key, ValueGroup: m.ValueGroup, Asset: compact(m.Asset), UnitRef: compact(m.UnitRef),
		}
	}
	return out, nil
}

func isObject(raw json.RawMessage) bool {
	var m map[string]any
	return json.Unmarshal(raw, &m) == nil && m != nil
}

func compact(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return nil
	}
	return b.Bytes()
}

// reservedHeaders cannot be set by a static auth header: hookstream sets them itself.
var reservedHeaders = []string{"content-type", "content-length", "host", "user-agent", "webhook-id", "webhook-timestamp",
	"webhook-signature", "x-hub-signature", "x-hub-signature-256", "x-hub-signature-sha256", "traceparent", "transfer-encoding", "connection"}

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")

// applyAuth validates the auth option and writes its non-secret parts onto def (the secrets go
// to the secrets bucket: writeSecrets).
func applyAuth(def *stream.Stream, a *authBody, opts urlPolicy) *web.Error {
	def.AuthUsername, def.AuthHeaderName, def.OAuth2TokenURL, def.OAuth2ClientID, def.OAuth2Scopes = "", "", "", "", nil
	for _, s := range []string{a.Username, a.Password, a.Name, a.Value, a.TokenURL, a.ClientID, a.ClientSecret} {
		if len(s) > maxAuthField || strings.ContainsAny(s, "\r\n\x00") {
			return web.BadRequest("auth", "values are at most %d bytes without line breaks", maxAuthField)
		}
	}
	switch a.Type {
	case "", proto.AuthNone:
		def.AuthType = proto.AuthNone
		return nil
	case proto.AuthBasic:
		return basicAuth(def, a)
	case proto.AuthHeader:
		return headerAuth(def, a)
	case proto.AuthOAuth2:
		return oauth2Auth(def, a, opts)
	default:
		return web.BadRequest("auth.type", "must be none, basic, header or oauth2")
	}
}

func basicAuth(def *stream.Stream, a *authBody) *web.Error {
	if a.Username == "" || strings.Contains(a.Username, ":") {
		return web.BadRequest("auth.username", "is required and cannot contain ':'")
	}
	if a.Password == "" {
		return web.BadRequest("auth.password", "is required")
	}
	def.AuthType, def.AuthUsername = proto.AuthBasic, a.Username
	return nil
}

func headerAuth(def *stream.Stream, a *authBody) *web.Error {
	name := strings.ToLower(a.Name)
	if !headerName.MatchString(a.Name) || slices.Contains(reservedHeaders, name) || strings.HasPrefix(name, "ce-") {
		return web.BadRequest("auth.name", "must be an HTTP header name that hookstream does not set itself")
	}
	if a.Value == "" {
		return web.BadRequest("auth.value", "is required")
	}
	def.AuthType, def.AuthHeaderName = proto.AuthHeader, http.CanonicalHeaderKey(a.Name)
	return nil
}

func oauth2Auth(def *stream.Stream, a *authBody, opts urlPolicy) *web.Error {
	if a.TokenURL == "" {
		return web.BadRequest("auth.tokenUrl", "is required")
	}
	if err := opts.check(a.TokenURL); err != nil {
		err.Field = "auth.tokenUrl"
		return err
	}
	if a.ClientID == "" || a.ClientSecret == "" {
		return web.BadRequest("auth.clientId", "clientId and clientSecret are required")
	}
	if len(a.Scopes) > maxScopes {
		return web.BadRequest("auth.scopes", "at most %d scopes", maxScopes)
	}
	for _, sc := range a.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n") || len(sc) > maxMetaString {
			return web.BadRequest("auth.scopes", "a scope is a non-empty word")
		}
	}
	def.AuthType, def.OAuth2TokenURL, def.OAuth2ClientID, def.OAuth2Scopes = proto.AuthOAuth2, a.TokenURL, a.ClientID, slices.Clone(a.Scopes)
	return nil
}

// formatAttributes are the payload, auth and signing fields of the stream resource. Secrets are
// never part of it (webhookSecret only in the answers of create and rotation).
type formatAttributes struct {
	ContentType   string                   `json:"contentType"`
	BodyTemplate  string                   `json:"bodyTemplate,omitempty"`
	Extensions    map[string]any           `json:"extensions,omitempty"`
	Grouped       bool                     `json:"grouped,omitempty"`
	Batch         *proto.Batch             `json:"batch,omitempty"`
	PointMeta     map[string]pointMetaBody `json:"pointMeta,omitempty"`
	Auth          *authBody                `json:"auth,omitempty"`
	PublicKey     string                   `json:"publicKey,omitempty"`
	WebhookSecret string                   `json:"webhookSecret,omitempty"`
	PrevExpiresAt string                   `json:"previousSecretExpiresAt,omitempty"`
}

func formatAttrs(d *stream.Stream) formatAttributes {
	a := formatAttributes{ContentType: d.ContentType, BodyTemplate: d.BodyTemplate, Extensions: d.Extensions,
		Grouped: d.Grouped, Batch: d.Batch, PublicKey: d.PublicKey}
	if a.ContentType == "" {
		a.ContentType = proto.ContentJSON
	}
	if len(d.PointMeta) > 0 {
		a.PointMeta = make(map[string]pointMetaBody, len(d.PointMeta))
		for k, m := range d.PointMeta {
			a.PointMeta[k] = pointMetaBody{Datatype: m.Datatype, Label: m.Label, Unit: m.Unit, Icon: m.Icon, Group: m.Group,
				Device: m.Device, Container: m.Container, Key: m.Key, ValueGroup: m.ValueGroup, Asset: m.Asset, UnitRef: m.UnitRef}
		}
	}
	if d.AuthType != "" && d.AuthType != proto.AuthNone {
		a.Auth = &authBody{Type: d.AuthType, Username: d.AuthUsername, Name: d.AuthHeaderName, TokenURL: d.OAuth2TokenURL,
			ClientID: d.OAuth2ClientID, Scopes: d.OAuth2Scopes}
	}
	if !d.PrevSecretUntil.IsZero() {
		a.PrevExpiresAt = rfc3339(d.PrevSecretUntil)
	}
	return a
}
