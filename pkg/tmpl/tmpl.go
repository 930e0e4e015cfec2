// Package tmpl implements seed 001's body and URL templates: literal text with {placeholders}
// such as {device_id}, {point_id}, {value} and {timestamp}. A template is parsed once (at create
// time, where a syntax error is a 400) and rendered per event by the signer. In a JSON body a
// placeholder inside a string is JSON-escaped, and one outside a string becomes a whole JSON
// value, so no value can break the body's structure.
package tmpl

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Context says how values are escaped.
type Context int

// Contexts.
const (
	JSON Context = iota // application/json body
	Form                // application/x-www-form-urlencoded body
	Text                // text/plain body
	URL                 // a webhook URL (values percent-encoded)
)

// MaxLen is the longest template accepted.
const MaxLen = 16 << 10

// Names lists every placeholder, in documentation order.
var Names = []string{
	"point_id", "device_id", "value", "timestamp", "timestamp_ms", "quality", "changed",
	"event_id", "event_type", "data", "label", "unit", "datatype", "partition", "stream_id", "delivery_id",
	"user_id",
}

// ErrSyntax wraps every parse error.
var ErrSyntax = errors.New("template syntax error")

// Value is one placeholder's value in its two forms.
type Value struct {
	// JSON is the value as a JSON value; it is used outside strings in a JSON body and must be
	// valid JSON (a nil JSON means null).
	JSON []byte
	// Text is the value as text, used everywhere else.
	Text string
}

// String returns a Value holding a string.
func String(s string) Value {
	j, _ := json.Marshal(s)
	return Value{JSON: j, Text: s}
}

// Raw returns a Value holding raw JSON: a JSON string's text is its content, any other value's
// text is its JSON. Invalid JSON is treated as a string.
func Raw(j []byte) Value {
	if len(j) == 0 {
		return Value{JSON: []byte("null")}
	}
	if !json.Valid(j) {
		return String(string(j))
	}
	var s string
	if j[0] == '"' && json.Unmarshal(j, &s) == nil {
		return Value{JSON: j, Text: s}
	}
	return Value{JSON: j, Text: string(j)}
}

// Int returns a Value holding an integer.
func Int(n int64) Value {
	s := strconv.FormatInt(n, 10)
	return Value{JSON: []byte(s), Text: s}
}

// Vars maps placeholder names to values; a missing name renders as null (JSON) or "" (text).
type Vars map[string]Value

type part struct {
	lit      string
	name     string // set for a placeholder
	inString bool   // inside a JSON string (JSON context only)
	padLeft  bool   // JSON: a space is needed to keep the value a token of its own
	padRight bool
}

// Template is a parsed template; safe for concurrent use.
type Template struct {
	ctx   Context
	parts []part
}

// Parse parses a template for a context. Braces around an identifier ({name}) are always a
// placeholder and an unknown name is an error; any other brace is literal text. A JSON template
// must be valid JSON once its placeholders are filled.
func Parse(src string, ctx Context) (*Template, error) {
	if len(src) > MaxLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrSyntax, MaxLen)
	}
	t := &Template{ctx: ctx}
	var lit strings.Builder
	inString, escaped := false, false
	for i := 0; i < len(src); {
		c := src[i]
		if c == '{' {
			if n := identLen(src[i+1:]); n > 0 && i+1+n < len(src) && src[i+1+n] == '}' {
				name := src[i+1 : i+1+n]
				if !slices.Contains(Names, name) {
					return nil, fmt.Errorf("%w: unknown placeholder {%s} at byte %d (known: %s)", ErrSyntax, name, i, strings.Join(Names, ", "))
				}
				t.parts = append(t.parts, part{lit: lit.String()}, part{name: name, inString: inString})
				lit.Reset()
				i += n + 2
				continue
			}
		}
		if ctx == JSON {
			switch {
			case escaped:
				escaped = false
			case inString && c == '\\':
				escaped = true
			case c == '"':
				inString = !inString
			}
		}
		lit.WriteByte(c)
		i++
	}
	t.parts = append(t.parts, part{lit: lit.String()})
	if ctx == JSON {
		for i := range t.parts {
			p := &t.parts[i]
			if p.name == "" || p.inString {
				continue
			}
			p.padLeft = !separated(t.parts[i-1].lit, true)
			p.padRight = !separated(t.parts[i+1].lit, false)
		}
		if err := t.check(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// separated reports whether the literal next to a JSON placeholder ends (before) or starts
// (after) with a structural character or white space, so the inserted value stays one token.
// Consecutive placeholders have an empty literal between them; they are padded.
func separated(lit string, before bool) bool {
	if lit == "" {
		return false
	}
	c := lit[0]
	if before {
		c = lit[len(lit)-1]
	}
	return strings.IndexByte(" \t\r\n[]{},:", c) >= 0
}

// sample has values of every JSON shape, so that check fails for a template whose validity would
// depend on a value.
var sample = Vars{
	"point_id": String(`p"1\` + "\n</x>"), "device_id": String("d{device_id}"), "value": Raw([]byte(`{"a":[1,"}"]}`)),
	"timestamp": String("2025-12-03T06:09:21.915Z"), "timestamp_ms": Int(-1), "quality": Int(0),
	"changed": Int(1), "event_id": String("e"), "event_type": String("point"), "data": Raw(nil),
	"label": String("ü\u2028"), "unit": String("°C"), "datatype": Raw(nil), "partition": String("p"),
	"stream_id": String("s"), "delivery_id": String("d"),
}

func (t *Template) check() error {
	for _, v := range []Vars{sample, {}} {
		out := t.Render(v)
		if !json.Valid(out) {
			var err error
			var x any
			if e := json.Unmarshal(out, &x); e != nil {
				err = e
			}
			return fmt.Errorf("%w: the body is not valid JSON once filled in: %v", ErrSyntax, err)
		}
	}
	return nil
}

func identLen(s string) int {
	n := 0
	for n < len(s) && n < 64 {
		c := s[n]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || n > 0 && c >= '0' && c <= '9' {
			n++
			continue
		}
		break
	}
	return n
}

// Empty returns the names of t's placeholders whose value in v is empty text, each once.
func (t *Template) Empty(v Vars) []string {
	var out []string
	for _, p := range t.parts {
		if p.name != "" && v[p.name].Text == "" && !slices.Contains(out, p.name) {
			out = append(out, p.name)
		}
	}
	return out
}

// Render fills the template in.
func (t *Template) Render(v Vars) []byte {
	var b []byte
	for _, p := range t.parts {
		if p.name == "" {
			b = append(b, p.lit...)
			continue
		}
		val := v[p.name]
		switch {
		case t.ctx == JSON && p.inString:
			q, _ := json.Marshal(val.Text)
			b = append(b, q[1:len(q)-1]...)
		case t.ctx == JSON:
			j := val.JSON
			if len(j) == 0 || !json.Valid(j) {
				j = []byte("null")
			}
			if p.padLeft {
				b = append(b, ' ')
			}
			b = append(b, j...)
			if p.padRight {
				b = append(b, ' ')
			}
		case t.ctx == Form:
			b = append(b, url.QueryEscape(val.Text)...)
		case t.ctx == URL:
			b = append(b, escapeURL(val.Text)...)
		default:
			b = append(b, val.Text...)
		}
	}
	return b
}

// HasPlaceholders reports whether the template has any placeholder.
func (t *Template) HasPlaceholders() bool { return len(t.parts) > 1 }

// escapeURL percent-encodes everything but RFC 3986's unreserved characters, so a value can fill
// a path segment or a query value and never add a separator.
func escapeURL(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// ParseURL parses a webhook URL template. Placeholders may appear only in the path and query,
// never in the scheme or host, so a value can never redirect a call to another host.
func ParseURL(raw string) (*Template, error) {
	t, err := Parse(raw, URL)
	if err != nil {
		return nil, err
	}
	if !t.HasPlaceholders() {
		return t, nil
	}
	prefix := t.parts[0].lit
	rest, ok := strings.CutPrefix(prefix, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(prefix, "http://")
	}
	if !ok || !strings.ContainsAny(rest, "/?") || strings.IndexAny(rest, "/?") == 0 {
		return nil, fmt.Errorf("%w: placeholders are allowed only in the URL's path and query", ErrSyntax)
	}
	if _, err := url.Parse(string(t.Render(Vars{}))); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	return t, nil
}
