package proto

import "strconv"

// Stream types.
const (
	TypePointStream = "point-stream"
	TypeEventStream = "event-stream"
)

// Stream statuses. A paused stream, and one disabled due to errors, holds what it matches and
// delivers it when it is active again; a disabled stream matches nothing, and what was pending
// for it when it was disabled is dead-lettered. An empty status (definitions written before
// statuses existed) is active.
const (
	StatusActive              = "active"
	StatusPaused              = "paused"
	StatusDisabled            = "disabled"
	StatusDisabledDueToErrors = "disabled_due_to_errors"
)

// Signature schemes.
const (
	SignatureHubSHA256 = "hub-sha256"
	SignatureHubSHA1   = "hub-sha1"
	// SignatureStandardWebhooks is the Standard Webhooks HMAC scheme (webhook-signature: v1,…).
	SignatureStandardWebhooks = "standard-webhooks"
	// SignatureStandardWebhooksEd25519 is the asymmetric Standard Webhooks scheme (v1a,…).
	SignatureStandardWebhooksEd25519 = "standard-webhooks-ed25519"
)

// Outbound authentication types (StreamDef.AuthType).
const (
	AuthNone   = "none"
	AuthBasic  = "basic"
	AuthHeader = "header"
	AuthOAuth2 = "oauth2"
)

// Body content types (StreamDef.ContentType).
const (
	ContentJSON = "json"
	ContentForm = "form"
	ContentText = "text"
)

// Payload formats.
const (
	FormatPoint               = "point"
	FormatTimeseries          = "timeseries"
	FormatCloudEvents         = "cloudevents"
	FormatCloudEventsBinary   = "cloudevents-binary"
	FormatMeasurements        = "measurements"
	FormatMeasurementsCompact = "measurements-compact"
	FormatEnvelope            = "envelope"
	FormatTemplate            = "template"
)

// StreamDef is a stream (webhook subscription) as stored in BucketStreams. It holds no secret;
// HasSecret says whether BucketSecrets holds one for it.
type StreamDef struct {
	V          uint8    `msgpack:"v"`
	ID         string   `msgpack:"id"`
	Partition  string   `msgpack:"p"`
	Type       string   `msgpack:"t"`
	Name       string   `msgpack:"n,omitempty"`
	WebhookURL string   `msgpack:"url"`
	PointIDs   []string `msgpack:"pids,omitempty"`
	Method     string   `msgpack:"m,omitempty"`
	Format     string   `msgpack:"f,omitempty"`
	Signature  string   `msgpack:"sig,omitempty"`
	HasSecret  bool     `msgpack:"hs,omitempty"`

	MaxRetry     int `msgpack:"mr"`
	FailureLimit int `msgpack:"fl"`
	MaxInFlight  int `msgpack:"mif"`
	// MaxRate caps deliveries per second to this stream's endpoint; 0 means no cap.
	MaxRate        float64 `msgpack:"rate,omitempty"`
	TimeoutMs      int     `msgpack:"to"`
	Ordered        bool    `msgpack:"ord,omitempty"`
	PropagateTrace bool    `msgpack:"pt,omitempty"`

	// Matching (issue 6). EventTypes are exact types or prefixes ending in "*" ("asset_*");
	// Properties lists, per event type, the data keys to deliver; Filter is a CEL (or seed 002
	// JSONPath-style) expression; ChangeOnly drops readings that moved by no more than Deadband
	// (nil: match.DefaultDeadband) since the point's previous reading.
	EventTypes []string            `msgpack:"ets,omitempty"`
	Properties map[string][]string `msgpack:"props,omitempty"`
	Filter     string              `msgpack:"flt,omitempty"`
	Deadband   *float64            `msgpack:"db,omitempty"`
	ChangeOnly bool                `msgpack:"co,omitempty"`

	Status string `msgpack:"st"`
	// StatusReason says why the system disabled the stream (status disabled_due_to_errors).
	StatusReason string `msgpack:"str,omitempty"`
	CreatedAt    int64  `msgpack:"ca"` // Unix nanoseconds
	UpdatedAt    int64  `msgpack:"ua"`

	// Payload and request shape (issue 7). See services/signer and README "Payload formats".
	ContentType  string               `msgpack:"ct,omitempty"`  // ContentJSON (default), ContentForm, ContentText
	BodyTemplate string               `msgpack:"bt,omitempty"`  // format template: the body with {placeholders}
	Extensions   map[string]any       `msgpack:"ext,omitempty"` // CloudEvents extensions: string, int64 or bool
	Grouped      bool                 `msgpack:"grp,omitempty"` // envelope: asset_values_created instead of asset_value_created
	Batch        *Batch               `msgpack:"bat,omitempty"`
	PointMeta    map[string]PointMeta `msgpack:"pm,omitempty"` // per point id: what the seed formats need and events lack

	// Outbound auth; the secret halves (password, header value, client secret) are in BucketSecrets
	// under AuthSecretKey.
	AuthType       string   `msgpack:"at,omitempty"`
	AuthUsername   string   `msgpack:"au,omitempty"`
	AuthHeaderName string   `msgpack:"ah,omitempty"`
	OAuth2TokenURL string   `msgpack:"otu,omitempty"`
	OAuth2ClientID string   `msgpack:"oci,omitempty"`
	OAuth2Scopes   []string `msgpack:"osc,omitempty"`

	// Signing secret generations: the current secret is at SecretKey(…, SecretGen); during a
	// rotation's overlap (until PrevSecretUntil, Unix ns) the one at PrevSecretGen signs too.
	SecretGen       int    `msgpack:"sgen,omitempty"`
	PrevSecretGen   int    `msgpack:"pgen,omitempty"`
	PrevSecretUntil int64  `msgpack:"puntil,omitempty"`
	PublicKey       string `msgpack:"pk,omitempty"` // standard-webhooks-ed25519: "whpk_<base64>"
	PrevPublicKey   string `msgpack:"ppk,omitempty"`

	// What the other platforms' APIs keep with a stream (issue 24): seed 001's failureReceivers
	// (user ids told when the stream fails) and its dataTrigger (JSON, kept as given).
	FailureReceivers []int64 `msgpack:"frx,omitempty"`
	DataTrigger      []byte  `msgpack:"dtr,omitempty"`
	// DLQRetentionMs is how long the stream's dead letters are kept (0: the deployment's
	// --dlq-retention); seed 004's webhooks keep them six months.
	DLQRetentionMs int64 `msgpack:"dlqr,omitempty"`
}

// Batch bounds how many events the signer gathers into one delivery (formats measurements,
// measurements-compact and grouped envelope). A batch is sent when any bound is reached.
type Batch struct {
	MaxEvents int `msgpack:"n" json:"maxEvents"`
	MaxWaitMs int `msgpack:"w" json:"maxWaitMs"`
	MaxBytes  int `msgpack:"b" json:"maxBytes"`
}

// PointMeta describes a point for formats whose fields a reading does not carry (seed 003's
// measurement datatype, label, unit, icon and relations; seed 004's asset, key, group and unit).
// Every field is optional; README "Payload formats" lists the defaults.
type PointMeta struct {
	Datatype   *int64 `msgpack:"dt,omitempty" json:"datatype,omitempty"`
	Label      string `msgpack:"l,omitempty" json:"label,omitempty"`
	Unit       string `msgpack:"u,omitempty" json:"unit,omitempty"`
	Icon       string `msgpack:"i,omitempty" json:"icon,omitempty"`
	Group      string `msgpack:"g,omitempty" json:"group,omitempty"`       // id_group
	Device     string `msgpack:"d,omitempty" json:"device,omitempty"`      // source_device, {device_id}
	Container  string `msgpack:"c,omitempty" json:"container,omitempty"`   // id_container
	Key        string `msgpack:"k,omitempty" json:"key,omitempty"`         // envelope value key
	ValueGroup string `msgpack:"vg,omitempty" json:"valueGroup,omitempty"` // envelope value group
	Asset      []byte `msgpack:"as,omitempty" json:"asset,omitempty"`      // envelope content.asset, a JSON object
	UnitRef    []byte `msgpack:"ur,omitempty" json:"unitRef,omitempty"`    // envelope value.unit, a JSON object
}

// Secret is secret material in BucketSecrets: a signing secret (at SecretKey) or the secret
// halves of outbound auth (at AuthSecretKey). The API writes it, only the signer reads it.
type Secret struct {
	V uint8 `msgpack:"v"`
	// Current is the signing key: the secret's bytes for hub-*, the "whsec_…" string for
	// standard-webhooks, the 32-byte Ed25519 seed for standard-webhooks-ed25519.
	Current []byte `msgpack:"cur,omitempty"`

	BasicPassword      string `msgpack:"bp,omitempty"`
	HeaderValue        string `msgpack:"hv,omitempty"`
	OAuth2ClientSecret string `msgpack:"ocs,omitempty"`
}

// SecretKey is the key of generation gen of a stream's signing secret. Generation 0 is the
// stream key itself; a rotation writes the next generation before the stream definition points at
// it, so a signer never sees a generation that is not stored yet.
func SecretKey(partition, streamID string, gen int) string {
	if gen == 0 {
		return StreamKey(partition, streamID)
	}
	return StreamKey(partition, streamID) + ".g" + strconv.Itoa(gen)
}

// AuthSecretKey is the key of a stream's outbound-auth secrets.
func AuthSecretKey(partition, streamID string) string {
	return StreamKey(partition, streamID) + ".auth"
}

// TargetState is delivery's record of a stream's health in BucketState. Delivery writes it; the
// API reads it into the stream resource and resets it when a stream is re-enabled.
type TargetState struct {
	V                   uint8 `msgpack:"v"`
	AttemptCount        int64 `msgpack:"ac"`
	LastTriggeredAt     int64 `msgpack:"lt,omitempty"` // Unix ns of the last attempt
	LastSuccessAt       int64 `msgpack:"ls,omitempty"`
	ConsecutiveFailures int64 `msgpack:"cf"`
	FailingSince        int64 `msgpack:"fs,omitempty"` // first failure after the last success
}
