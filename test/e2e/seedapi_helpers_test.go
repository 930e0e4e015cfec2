package e2e

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// readTestdata decodes a file of test/testdata into v.
func readTestdata(t *testing.T, v any, parts ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"..", "testdata"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %v", parts, err)
	}
}

// compareFields compares a response with a seed's example field by field: every field of want
// must be in got with the same value, except those in shape, which need only be integers (ids,
// counters and timestamps differ from the example's).
func compareFields(t *testing.T, what string, got, want map[string]any, shape ...string) {
	t.Helper()
	isShape := map[string]bool{}
	for _, k := range shape {
		isShape[k] = true
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: field %q missing (want like %v)", what, k, w)
		case isShape[k]:
			if n, ok := g.(float64); !ok || n != math.Trunc(n) {
				t.Errorf("%s: field %q = %v, want an integer like %v", what, k, g, w)
			}
		default:
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			if string(gj) != string(wj) {
				t.Errorf("%s: field %q = %s, want %s", what, k, gj, wj)
			}
		}
	}
}

// object decodes a JSON object response.
func object(t *testing.T, what string, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v: %s", what, err, b)
	}
	return m
}

// errorField is the field an error response names.
func errorField(b []byte) string {
	var e struct {
		Error struct {
			Field string `json:"field"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Error.Field
}
