package ingest

import "testing"

func TestSameValueExactNumbers(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"9007199254740993", "9007199254740992", false},
		{"22", "22.0", true},
		{"2.2e1", "22", true},
		{"0.1", "0.10000000000000001", false},
		{`"22"`, "22", false},
	}
	for _, c := range cases {
		if got := sameValue([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("sameValue(%s, %s) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
