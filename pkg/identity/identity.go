// Package identity renders the CloudEvents identity of a partition's events: the source URIs
// of its point readings and live queries, the type of its point records, and the organization
// id its events carry. A partition without settings keeps hookstream's own identity
// ("//hookstream/partitions/{partition}/points/{pointId}", type
// "com.hookstream.timeseries.point.record.v1", no extension attributes).
package identity

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Placeholders of the source templates.
const (
	PhOrg         = "{org}"
	PhPartition   = "{partition}"
	PhPointID     = "{pointId}"
	PhLiveQueryID = "{liveQueryId}"
)

// Hookstream's own identity, for partitions without settings.
const (
	DefaultPointSource     = "//hookstream/partitions/{partition}/points/{pointId}"
	DefaultLiveQuerySource = "//hookstream/partitions/{partition}/liveQueries/{liveQueryId}"
	DefaultPointType       = "com.hookstream.timeseries.point.record.v1"
	DefaultLiveQueryType   = "com.hookstream.livequery.result.v1"
)

// Limits of the settings.
const (
	MaxTemplate = 512
	MaxType     = 256
	MaxOrgID    = 128
)

// ErrInvalid wraps every reason settings are refused; Field names the setting.
var ErrInvalid = errors.New("invalid cloudevents identity")

// InvalidError is a refused setting.
type InvalidError struct {
	Field, Reason string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("%v: %s %s", ErrInvalid, e.Field, e.Reason) }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Identity is a partition's CloudEvents identity (its JSON is the settings' API body and the
// stored value). Empty fields take hookstream's defaults. The zero value, and a nil *Identity,
// are hookstream's own identity. Identity is immutable once shared.
type Identity struct {
	// OrgID is {org} in the templates and the "orgid" extension (default: the partition).
	OrgID string `json:"orgId,omitempty"`
	// PointSourceTemplate is the source of point readings, with {pointId}.
	PointSourceTemplate string `json:"pointSource,omitempty"`
	// LiveQuerySourceTemplate is the source of live-query results, with {liveQueryId}.
	LiveQuerySourceTemplate string `json:"liveQuerySource,omitempty"`
	// PointTypeName is the type of point records.
	PointTypeName string `json:"pointType,omitempty"`
	// LiveQueryTypeName is the type of live-query results.
	LiveQueryTypeName string `json:"liveQueryType,omitempty"`
}

var (
	typeRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
	orgRE   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	phRE    = regexp.MustCompile(`\{[^{}]*\}`)
	allowed = map[string][]string{
		"pointSource":     {PhOrg, PhPartition, PhPointID},
		"liveQuerySource": {PhOrg, PhPartition, PhLiveQueryID},
	}
)

// Validate checks every setting, naming the first bad one.
func (id *Identity) Validate() error {
	if id.OrgID != "" && (len(id.OrgID) > MaxOrgID || !orgRE.MatchString(id.OrgID)) {
		return &InvalidError{"orgId", fmt.Sprintf("must be 1 to %d of A-Z a-z 0-9 _ -", MaxOrgID)}
	}
	for _, t := range []struct{ field, v, need string }{
		{"pointSource", id.PointSourceTemplate, PhPointID},
		{"liveQuerySource", id.LiveQuerySourceTemplate, PhLiveQueryID},
	} {
		if err := checkTemplate(t.field, t.v, t.need); err != nil {
			return err
		}
	}
	for _, t := range []struct{ field, v string }{{"pointType", id.PointTypeName}, {"liveQueryType", id.LiveQueryTypeName}} {
		if t.v != "" && (len(t.v) > MaxType || !typeRE.MatchString(t.v)) {
			return &InvalidError{t.field, fmt.Sprintf("must be 1 to %d of A-Z a-z 0-9 . _ : - (e.g. com.mapped.timeseries.point.record.v1)", MaxType)}
		}
	}
	return nil
}

// checkTemplate checks a source template: a URI reference once filled in, with the
// placeholder need and no unknown one.
func checkTemplate(field, tpl, need string) error {
	if tpl == "" {
		return nil
	}
	if len(tpl) > MaxTemplate {
		return &InvalidError{field, fmt.Sprintf("is longer than %d bytes", MaxTemplate)}
	}
	if !strings.Contains(tpl, need) {
		return &InvalidError{field, "must contain " + need}
	}
	for _, ph := range phRE.FindAllString(tpl, -1) {
		if !contains(allowed[field], ph) {
			return &InvalidError{field, fmt.Sprintf("has an unknown placeholder %s (known: %s)", ph, strings.Join(allowed[field], ", "))}
		}
	}
	filled := phRE.ReplaceAllString(tpl, "x")
	if strings.ContainsAny(filled, " {}\"'\\\x00\r\n\t") {
		return &InvalidError{field, "must be a URI reference (no spaces, quotes, braces or backslashes)"}
	}
	if _, err := url.Parse(filled); err != nil {
		return &InvalidError{field, "must be a URI reference: " + err.Error()}
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Configured reports whether the partition has settings of its own (non-nil and not empty):
// only then do its CloudEvents carry the extension attributes.
func (id *Identity) Configured() bool { return id != nil && *id != Identity{} }

// Org is the organization id: OrgID, or the partition.
func (id *Identity) Org(partition string) string {
	if id != nil && id.OrgID != "" {
		return id.OrgID
	}
	return partition
}

// PointSource is the source of a point's readings.
func (id *Identity) PointSource(partition, pointID string) string {
	tpl := DefaultPointSource
	if id != nil && id.PointSourceTemplate != "" {
		tpl = id.PointSourceTemplate
	}
	return fill(tpl, id.Org(partition), partition, PhPointID, pointID)
}

// LiveQuerySource is the source of a live query's results.
func (id *Identity) LiveQuerySource(partition, liveQueryID string) string {
	tpl := DefaultLiveQuerySource
	if id != nil && id.LiveQuerySourceTemplate != "" {
		tpl = id.LiveQuerySourceTemplate
	}
	return fill(tpl, id.Org(partition), partition, PhLiveQueryID, liveQueryID)
}

// PointType is the type of point records.
func (id *Identity) PointType() string {
	if id != nil && id.PointTypeName != "" {
		return id.PointTypeName
	}
	return DefaultPointType
}

// LiveQueryType is the type of live-query results.
func (id *Identity) LiveQueryType() string {
	if id != nil && id.LiveQueryTypeName != "" {
		return id.LiveQueryTypeName
	}
	return DefaultLiveQueryType
}

func fill(tpl, org, partition, ph, v string) string {
	return strings.NewReplacer(PhOrg, org, PhPartition, partition, ph, v).Replace(tpl)
}
