package remotecontext

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkParse parses each real fixture; bytes/s is the parser's throughput.
func BenchmarkParse(b *testing.B) {
	eachFixture(b, func(b *testing.B, body []byte) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(body, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseHeader reads each fixture's header alone, as an echo of our
// own write is read; header/parse is its cost beside a whole Parse.
func BenchmarkParseHeader(b *testing.B) {
	eachFixture(b, func(b *testing.B, body []byte) {
		const rounds = 200
		var whole, header time.Duration
		for b.Loop() {
			start := time.Now()
			for range rounds {
				if _, err := Parse(body, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			mid := time.Now()
			for range rounds {
				if _, err := ParseHeader(body, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			whole, header = whole+mid.Sub(start), header+time.Since(mid)
		}
		b.ReportMetric(float64(header.Nanoseconds())/float64(b.N*rounds), "header_ns")
		b.ReportMetric(float64(whole.Nanoseconds())/float64(b.N*rounds), "parse_ns")
		b.ReportMetric(float64(header)/float64(whole), "header/parse")
		b.ReportMetric(0, "ns/op")
	})
}

// eachFixture runs bench on each real fixture, a sub-benchmark each.
func eachFixture(b *testing.B, bench func(b *testing.B, body []byte)) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(f), func(b *testing.B) { bench(b, body) })
	}
}
