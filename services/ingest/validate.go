package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"hookstream/proto"
)

// What is valid input is decided here, once, for every edge: HTTP ingest (http.go) runs the same
// functions on a request as the stage (acceptInput) runs on what the request stored, so what
// HTTP acknowledges the stage accepts (FuzzEdgesAgree checks it). Over NATS, JetStream
// acknowledges a publish before the stage sees it; what the stage refuses is kept in DLQ
// (rejected.go).

// MaxDepth is how deeply a payload may nest arrays and objects (msgpack maps), counting the
// reading or event object and an array of them: JSON and msgpack alike. A value or data nested
// deeper is refused rather than handed to receivers, which often parse with a recursion limit.
const MaxDepth = 100

// Format is how an ingest payload is encoded.
type Format uint8

const (
	// FormatDetect tells the encoding by the first byte: '{' or '[' after white space is JSON,
	// a msgpack map or array header is msgpack. It applies when no Content-Type is given.
	FormatDetect Format = iota
	FormatJSON
	FormatMsgpack
)

// ErrUnsupportedMedia marks a Content-Type or Content-Encoding ingest does not take.
var ErrUnsupportedMedia = errors.New("unsupported media type")

// Media types of ingest payloads.
const (
	mediaJSON    = "application/json"
	mediaMsgpack = "application/msgpack"
)

// FormatOf is the format a Content-Type names: application/json (with no charset, or UTF-8),
// application/msgpack or application/x-msgpack; none is FormatDetect. Any other is an error
// wrapping ErrUnsupportedMedia.
func FormatOf(contentType string) (Format, error) {
	if strings.TrimSpace(contentType) == "" {
		return FormatDetect, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("%w: Content-Type %q cannot be parsed: send %s or %s", ErrUnsupportedMedia, clip(contentType), mediaJSON, mediaMsgpack)
	}
	switch mt {
	case mediaJSON:
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			return 0, fmt.Errorf("%w: Content-Type %s with charset %s: JSON must be UTF-8", ErrUnsupportedMedia, mt, clip(cs))
		}
		return FormatJSON, nil
	case mediaMsgpack, "application/x-msgpack":
		return FormatMsgpack, nil
	}
	return 0, fmt.Errorf("%w: Content-Type %s is not taken: send %s or %s (or application/x-msgpack)", ErrUnsupportedMedia, clip(mt), mediaJSON, mediaMsgpack)
}

// MediaType is the Content-Type that names f; "" for FormatDetect.
func (f Format) MediaType() string {
	switch f {
	case FormatJSON:
		return mediaJSON
	case FormatMsgpack:
		return mediaMsgpack
	}
	return ""
}

// payloadJSON returns a payload as JSON text that starts with '{' or '[' and meets checkJSON:
// msgpack converted, JSON as it is (less leading white space).
func payloadJSON(data []byte, f Format) ([]byte, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("empty payload")
	}
	if f == FormatDetect {
		switch {
		case trimmed[0] == '{' || trimmed[0] == '[':
			f = FormatJSON
		case msgpackContainer(data[0]):
			f = FormatMsgpack
		default:
			return nil, neither(trimmed)
		}
	}
	if f == FormatMsgpack {
		j, err := msgpackToJSON(data)
		if err != nil {
			return nil, err
		}
		trimmed = j
	} else {
		if trimmed[0] != '{' && trimmed[0] != '[' {
			if json.Valid(trimmed) {
				return nil, fmt.Errorf("payload is JSON %s; it must be an object or an array of objects", jsonKind(trimmed[0]))
			}
			return nil, fmt.Errorf("invalid JSON: a payload must be an object or an array of objects, and this one begins with %q", clip(string(trimmed[:min(len(trimmed), 16)])))
		}
		if !utf8.Valid(trimmed) {
			return nil, errors.New("payload is not valid UTF-8")
		}
	}
	if err := checkJSON(trimmed); err != nil {
		return nil, err
	}
	return trimmed, nil
}

// neither describes a payload of no known format.
func neither(trimmed []byte) error {
	if json.Valid(trimmed) {
		return fmt.Errorf("payload is JSON %s; it must be an object or an array of objects", jsonKind(trimmed[0]))
	}
	return fmt.Errorf("payload is neither JSON nor msgpack: it must be a JSON object or array, or a msgpack map or array, and it begins with byte 0x%02x", trimmed[0])
}

func jsonKind(first byte) string {
	switch first {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	}
	return "a number"
}

// checkJSON enforces on a JSON text what encoding/json lets through: it nests at most MaxDepth
// deep, every number is finite as a float64 (1e999 is not: receivers read it as Infinity), and
// no string escapes half a UTF-16 surrogate pair (decoders turn it into U+FFFD, altering it). It
// leaves the syntax to the decoder. One pass, without allocating for ordinary input.
func checkJSON(b []byte) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			end, err := stringEnd(b, i+1)
			if err != nil {
				return err
			}
			i = end
		case c == '{' || c == '[':
			if depth++; depth > MaxDepth {
				return fmt.Errorf("nested deeper than %d levels (arrays and objects)", MaxDepth)
			}
		case c == '}' || c == ']':
			depth--
		case c == '-' || c >= '0' && c <= '9':
			end, exp := i+1, false
			for ; end < len(b) && numberByte(b[end]); end++ {
				exp = exp || b[end] == 'e' || b[end] == 'E'
			}
			// Only an exponent or more than 308 digits can leave float64's range.
			if exp || end-i > 308 {
				if f, err := strconv.ParseFloat(string(b[i:end]), 64); err != nil && math.IsInf(f, 0) {
					return fmt.Errorf("number %s is beyond the range of a 64-bit float (NaN and Infinity are not taken)", clip(string(b[i:end])))
				}
			}
			i = end - 1
		}
	}
	return nil
}

func numberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// stringEnd returns the index of the quote that closes the string starting at i (len(b) when
// none does: the decoder reports that), refusing an unpaired surrogate escape.
func stringEnd(b []byte, i int) (int, error) {
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i, nil
		case '\\':
			if i+1 < len(b) && b[i+1] == 'u' {
				r := hex4(b, i+2)
				switch {
				case r >= 0xdc00 && r <= 0xdfff:
					return 0, fmt.Errorf("string holds an unpaired UTF-16 surrogate escape (\\u%04x): not valid Unicode", r)
				case r >= 0xd800 && r <= 0xdbff:
					if i+11 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' || hex4(b, i+8) < 0xdc00 || hex4(b, i+8) > 0xdfff {
						return 0, fmt.Errorf("string holds an unpaired UTF-16 surrogate escape (\\u%04x): not valid Unicode", r)
					}
					i += 6 // the low half; the loop's step and the one below skip the rest
				}
			}
			i++
		}
	}
	return len(b), nil
}

// hex4 decodes the 4 hex digits at b[i:]; -1 when they are not (the decoder reports that).
func hex4(b []byte, i int) int {
	if i+4 > len(b) {
		return -1
	}
	n := 0
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			n = n<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			n = n<<4 | int(c-'A'+10)
		default:
			return -1
		}
	}
	return n
}

// input is one INGEST message as the stage accepts it.
type input struct {
	partition string
	kind      string // "points", "events", proto.IngestKindEntities or proto.IngestKindBatch
	last      string // point id or event type; "" for a batch
	readings  []Reading
	events    []DeviceEvent
	entities  []EntityDoc
	batch     []BatchItem
}

// acceptInput is the stage's definition of a valid INGEST message: its subject, its
// Content-Type header (none: FormatDetect) and its payload. Every error is permanent.
func acceptInput(subject string, h nats.Header, data []byte) (input, error) {
	if n := len(data); n > MaxPayload {
		return input{}, &TooLargeError{Size: n, Limit: MaxPayload}
	}
	partition, kind, last, ok := proto.ParseIngestSubject(subject)
	if !ok || !proto.ValidToken(partition) || (kind != proto.IngestKindBatch && !proto.ValidToken(last)) {
		return input{}, errors.New("malformed subject: want hookstream.ingest.{partition}.points.{pointId}, hookstream.ingest.{partition}.events.{type}, hookstream.ingest.{partition}.entities.{type} or hookstream.ingest.{partition}.batch, each id " + proto.TokenRule)
	}
	in := input{partition: partition, kind: kind, last: last}
	f, err := FormatOf(h.Get("Content-Type"))
	if err != nil {
		return in, err
	}
	switch kind {
	case "points":
		in.readings, err = ParseReadings(data, f)
	case "events":
		in.events, err = ParseEvents(data, f, last)
	case proto.IngestKindEntities:
		in.entities, err = ParseEntities(data, f, last)
	case proto.IngestKindBatch:
		in.batch, err = ParseBatch(data, f)
	default:
		err = fmt.Errorf("unsupported ingest kind %q: want points, events, entities or batch", clip(kind))
	}
	return in, err
}

// decodeMany decodes a payload of one W (an object) or an array of 1 to most of them; what names
// them in errors.
func decodeMany[W any](payload []byte, what string, most int) ([]W, error) {
	if payload[0] != '[' {
		ws := make([]W, 1)
		if err := json.Unmarshal(payload, &ws[0]); err != nil {
			return nil, jsonError(err, what)
		}
		return ws, nil
	}
	var ws []W
	if err := json.Unmarshal(payload, &ws); err != nil {
		return nil, jsonError(err, what)
	}
	switch {
	case len(ws) == 0:
		return nil, errors.New("empty array")
	case len(ws) > most:
		return nil, fmt.Errorf("%d %ss exceed the limit of %d", len(ws), what, most)
	}
	return ws, nil
}

// jsonError restates an error of encoding/json without Go's type names; what names the
// elements of the payload ("reading", "event").
func jsonError(err error, what string) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return fmt.Errorf("each %s must be a JSON object, not %s", what, te.Value)
		}
		want := "an object"
		switch te.Type.Kind() {
		case reflect.Int, reflect.Int64:
			want = "an integer"
		case reflect.String:
			want = "a string"
		}
		return fmt.Errorf("%s must be %s, not %s", te.Field, want, te.Value)
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	return err
}
