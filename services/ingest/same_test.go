package ingest

import (
	"testing"
)

func TestSameValue(t *testing.T) {
	tests := []struct {
		name string
		a, b string // "" means nil (no previous reading)
		want bool
	}{
		{"no previous reading", "", `22`, false},
		{"equal numbers", `22`, `22`, true},
		{"integer and float", `22`, `22.0`, true},
		{"exponent form", `1e2`, `100`, true},
		{"negative zero", `-0`, `0`, true},
		{"different numbers", `22`, `22.5`, false},
		{"string and number", `"22"`, `22`, false},
		{"number and string", `22`, `"22"`, false},
		{"equal strings", `"22"`, `"22"`, true},
		{"strings are not numbers", `"22"`, `"22.0"`, false},
		{"booleans", `true`, `true`, true},
		{"different booleans", `true`, `false`, false},
		{"equal objects", `{"a":1}`, `{"a":1}`, true},
		{"different objects", `{"a":1}`, `{"a":2}`, false},
		{"arrays", `[1,2]`, `[1,2]`, true},
		{"different arrays", `[1,2]`, `[2,1]`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a []byte
			if tc.a != "" {
				a = []byte(tc.a)
			}
			if got := sameValue(a, []byte(tc.b)); got != tc.want {
				t.Errorf("sameValue(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestEventIDDeterministic(t *testing.T) {
	base := eventID("epoch", 7, 0)
	if again := eventID("epoch", 7, 0); again != base {
		t.Errorf("eventID is not deterministic: %s then %s", base, again)
	}
	others := map[string]string{
		"other epoch":  eventID("epoch2", 7, 0),
		"other seq":    eventID("epoch", 8, 0),
		"other index":  eventID("epoch", 7, 1),
		"seq vs index": eventID("epoch", 70, 0),
	}
	for name, id := range others {
		if id == base {
			t.Errorf("%s gives the same id %s", name, id)
		}
	}
	if len(base) != 36 {
		t.Errorf("id %q is not a UUID", base)
	}
}
