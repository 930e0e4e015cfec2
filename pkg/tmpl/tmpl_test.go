package tmpl_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"testing"

	"hookstream/pkg/stream"
	"hookstream/pkg/tmpl"
	"hookstream/proto"
)

func vars(value []byte, device string) tmpl.Vars {
	return tmpl.Vars{"value": tmpl.Raw(value), "device_id": tmpl.String(device), "point_id": tmpl.String("p1"),
		"timestamp_ms": tmpl.Int(1700000000000), "data": tmpl.Raw([]byte(`{"a":1}`))}
}

func TestRenderJSON(t *testing.T) {
	for _, tc := range []struct {
		name, src, device, value, want string
	}{
		{"seed 001", `{"device_id": "{device_id}"}`, "dev-1", `1`, `{"device_id": "dev-1"}`},
		{"escaped in string", `{"d": "id={device_id}!"}`, "a\"b\\c\n", `1`, `{"d": "id=a\"b\\c\n!"}`},
		{"value outside string keeps its type", `{"v": {value}}`, "", `"22"`, `{"v": "22"}`},
		{"value inside string is its text", `{"v": "{value}"}`, "", `"22"`, `{"v": "22"}`},
		{"number inside string", `{"v": "{value}"}`, "", `22.5`, `{"v": "22.5"}`},
		{"adjacent placeholders padded", `[{value},{timestamp_ms}]`, "", `1`, `[1,1700000000000]`},
		{"injection stays a string", `{"d": "{device_id}"}`, `", "admin": true, "x": "`, `1`, `{"d": "\", \"admin\": true, \"x\": \""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := tmpl.Parse(tc.src, tmpl.JSON)
			if err != nil {
				t.Fatal(err)
			}
			got := string(tp.Render(vars([]byte(tc.value), tc.device)))
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"unknown placeholder", `{"d": "{devise_id}"}`},
		{"not JSON", `{"d": {device_id}`},
		{"value glued to a literal", `{"d": 1{value}}`},
		{"placeholder as key", `{ {point_id}: 1 }`},
		{"two values in a row", `[{value}{value}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tmpl.Parse(tc.src, tmpl.JSON); !errors.Is(err, tmpl.ErrSyntax) {
				t.Errorf("Parse(%s) err = %v, want ErrSyntax", tc.src, err)
			}
		})
	}
}

func TestFormAndURL(t *testing.T) {
	tp, err := tmpl.Parse("device={device_id}&v={value}", tmpl.Form)
	if err != nil {
		t.Fatal(err)
	}
	got := string(tp.Render(vars([]byte(`"a&b=c"`), "x y")))
	q, err := url.ParseQuery(got)
	if err != nil || q.Get("device") != "x y" || q.Get("v") != "a&b=c" {
		t.Errorf("form %q -> %v %v", got, q, err)
	}
	u, err := tmpl.ParseURL("https://example.com/webhook/{device_id}?p={point_id}")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(u.Render(vars(nil, "../a/b?c"))); got != "https://example.com/webhook/..%2Fa%2Fb%3Fc?p=p1" {
		t.Errorf("url %s", got)
	}
	for _, bad := range []string{"https://{device_id}.example.com/", "https://example.com{device_id}/", "{device_id}"} {
		if _, err := tmpl.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted a placeholder outside path and query", bad)
		}
	}
}

// FuzzRender: whatever the template and values, rendering never panics, and a JSON template that
// parses renders valid JSON whatever the values.
func FuzzRender(f *testing.F) {
	f.Add(`{"device_id": "{device_id}"}`, "dev-1", `"22"`)
	f.Add(`{"v": {value}, "d": "{device_id}", "t": {timestamp_ms}}`, `"}{`, `{"a":[1,2]}`)
	f.Add(`[{value} , "{value}"]`, "\\", `not json`)
	f.Fuzz(func(t *testing.T, src, device, value string) {
		tp, err := tmpl.Parse(src, tmpl.JSON)
		for _, ctx := range []tmpl.Context{tmpl.Form, tmpl.Text, tmpl.URL} {
			if p, err := tmpl.Parse(src, ctx); err == nil {
				p.Render(vars([]byte(value), device))
			}
		}
		if err != nil {
			return
		}
		out := tp.Render(vars([]byte(value), device))
		if !json.Valid(out) {
			t.Fatalf("template %q with device %q value %q rendered invalid JSON: %s", src, device, value, out)
		}
	})
}

func TestUserIDAndEmptyPlaceholders(t *testing.T) {
	tests := []struct {
		name, data, wantURL string
		empty               []string
	}{
		{"user_id", `{"user_id": 42}`, "https://h/x/dev-1/42", nil},
		{"userId", `{"userId": "u-7"}`, "https://h/x/dev-1/u-7", nil},
		{"user.id", `{"user": {"id": 9}}`, "https://h/x/dev-1/9", nil},
		{"no user", `{"name": "x"}`, "", []string{"user_id"}},
	}
	u, err := tmpl.ParseURL("https://h/x/{device_id}/{user_id}")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &proto.Event{Type: "DEVICE_ADDED", Subject: "dev-1", Data: []byte(tt.data)}
			vars := tmpl.EventVars(&stream.Stream{ID: "s1"}, "d1", ev)
			empty := u.Empty(vars)
			if !slices.Equal(empty, tt.empty) {
				t.Fatalf("empty = %v, want %v", empty, tt.empty)
			}
			if tt.wantURL != "" && string(u.Render(vars)) != tt.wantURL {
				t.Fatalf("url = %s, want %s", u.Render(vars), tt.wantURL)
			}
		})
	}
	// A reading without device metadata renders its point id as {device_id}.
	ev := &proto.Event{Type: proto.EventTypePoint, Subject: "p1"}
	if got := string(u.Render(tmpl.EventVars(&stream.Stream{}, "d1", ev))); got != "https://h/x/p1/" {
		t.Fatalf("reading url = %s", got)
	}
}
