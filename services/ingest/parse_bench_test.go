package ingest

import "testing"

// BenchmarkParseReadings measures the stage's acceptance of typical NATS readings: a bench
// reading (a string value), and a small array with numbers and a timestamp.
func BenchmarkParseReadings(b *testing.B) {
	payloads := map[string][]byte{
		"one":   []byte(`{"value":"12345-1764742161915000000"}`),
		"array": []byte(`[{"value":21.5,"timestamp":"2025-12-03T06:09:21.915Z"},{"value":1e3,"qualityOfValue":192},{"value":{"a":[1,2,{"b":-0.5e-2}]}}]`),
	}
	for name, p := range payloads {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseReadings(p, FormatDetect); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
