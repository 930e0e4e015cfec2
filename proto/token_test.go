package proto_test

import (
	"strings"
	"testing"

	"hookstream/proto"
)

func TestTokenProblem(t *testing.T) {
	tests := []struct {
		id   string
		want string // "" when valid
	}{
		{"p1", ""},
		{"a-b_c:d@e~f+g=h%i", ""},
		{strings.Repeat("x", 128), ""},
		{"", "is empty; it must be 1–128 characters"},
		{strings.Repeat("x", 129), "is 129 characters long, over the limit of 128; it must be 1–128 characters"},
		{"a.b", `contains '.' at position 2; it must be`},
		{"pünkt", `contains 'ü' at position 2`},
		{"a b", `contains ' ' at position 2`},
		{"ab*", `contains '*' at position 3`},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			got := proto.TokenProblem(tc.id)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("TokenProblem(%q) = %q, want %q", tc.id, got, tc.want)
			}
			if (got == "") != proto.ValidToken(tc.id) {
				t.Fatalf("TokenProblem(%q) = %q disagrees with ValidToken", tc.id, got)
			}
		})
	}
}
