package match_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"hookstream/pkg/match"
)

// referenceNumber is what match.Number read before it parsed numbers itself: json.Unmarshal
// into a float64, of the string's content for a JSON string; but null (which json.Unmarshal
// leaves as 0 without an error, so it read as 0) is no number.
func referenceNumber(raw []byte) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		raw = []byte(s)
	}
	if string(bytes.Trim(raw, " \t\r\n")) == "null" {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return f, true
}

var numberInputs = []string{
	"22", "22.5", "-0", "0", "-1.5e3", "1E+2", "1e-2", "0.0001", "1e400", "-1e400", "123456789012345678901234567890",
	" 22 ", "\t22\n", `"22"`, `"22.0"`, `" 22 "`, `"\t22"`, "\"\t22\"", `"2\u0032"`, `"\u0032"`, `"22\\"`, `"\"22\""`,
	"", " ", `""`, `"`, `"22`, `22"`, `"22"x`, `"22" "23"`, "022", "-", "+1", ".5", "5.", "1e", "1e+", "0x1F", "Inf", "NaN",
	"1_000", "--1", "1.2.3", "true", "null", "[1]", `{"v":1}`, "１", `"١٢"`, "\u00a022", "22\u00a0", `"22 "`, "\"22\u00a0\"",
	"\xff", `"\xff22"`, "-0.0", "0e0", "0E-0", "00", "-01", "null", `"null"`, " null ",
}

// TestNumberMatchesJSON: match.Number reads what json.Unmarshal read (null aside).
func TestNumberMatchesJSON(t *testing.T) {
	for _, in := range numberInputs {
		got, gotOK := match.Number([]byte(in))
		want, wantOK := referenceNumber([]byte(in))
		if got != want || gotOK != wantOK {
			t.Errorf("Number(%q) = %v, %v; json.Unmarshal read %v, %v", in, got, gotOK, want, wantOK)
		}
	}
}

func FuzzNumber(f *testing.F) {
	for _, in := range numberInputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, gotOK := match.Number([]byte(in))
		want, wantOK := referenceNumber([]byte(in))
		if got != want || gotOK != wantOK {
			t.Fatalf("Number(%q) = %v, %v; json.Unmarshal read %v, %v", in, got, gotOK, want, wantOK)
		}
	})
}

func BenchmarkNumber(b *testing.B) {
	for _, in := range []string{"21.5", `"22"`} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := match.Number([]byte(in)); !ok {
					b.Fatal("not a number")
				}
			}
		})
	}
}
