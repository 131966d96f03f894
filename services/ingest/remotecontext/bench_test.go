package remotecontext

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkParse parses each real fixture; bytes/s is the parser's throughput.
func BenchmarkParse(b *testing.B) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(f), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(body, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
