package match_test

import (
	"errors"
	"testing"

	"hookstream/pkg/match"
)

// FuzzCompileFilter: any text either compiles or fails with ErrInvalidFilter, never panics, and
// a compiled filter evaluates against a reading and an event without panicking.
func FuzzCompileFilter(f *testing.F) {
	f.Add("event.type == 'asset_updated'")
	f.Add("@.source == '//hookstream/partitions/p1/points/P1' || @.source == '//x'")
	f.Add("point.value > 20.5 && event.data.quality == 0")
	f.Fuzz(func(t *testing.T, src string) {
		flt, err := match.CompileFilter(src)
		if err != nil {
			if !errors.Is(err, match.ErrInvalidFilter) {
				t.Fatalf("error %v does not wrap ErrInvalidFilter", err)
			}
			return
		}
		flt.Eval(match.NewInput(reading("P1", "21.5", "20")))
		flt.Eval(match.NewInput(event("asset_updated", "1", `{"asset":{"id":1,"tags":["a"]}}`)))
		flt.Keys()
	})
}

// FuzzTranslateJSONPath: translation never panics, fails only with ErrInvalidFilter, and a
// translation is valid CEL text or is rejected by the compiler with ErrInvalidFilter.
func FuzzTranslateJSONPath(f *testing.F) {
	f.Add("@.source == '//com.mapped/org/ORG1/timeseries/point/PNT1'")
	f.Add("$[?(@.type == 'a' && @.data.x > 1)]")
	f.Add(`@.source == "it's"`)
	f.Fuzz(func(t *testing.T, src string) {
		out, err := match.TranslateJSONPath(src)
		if err != nil {
			if !errors.Is(err, match.ErrInvalidFilter) {
				t.Fatalf("error %v does not wrap ErrInvalidFilter", err)
			}
			return
		}
		if match.IsJSONPath(out) && out != src {
			// Only "@"/"$" inside string literals may remain.
			t.Fatalf("translation %q still refers to @ or $", out)
		}
		if _, err := match.CompileFilter(out); err != nil && !errors.Is(err, match.ErrInvalidFilter) {
			t.Fatalf("compile error %v does not wrap ErrInvalidFilter", err)
		}
	})
}
