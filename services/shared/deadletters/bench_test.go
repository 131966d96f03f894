package deadletters

import (
	"testing"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// BenchmarkListScan reads a page whose filter nothing matches: the most
// one list request reads (maxScan dead letters, one request each).
func BenchmarkListScan(b *testing.B) {
	f := newFixture(b)
	for range maxScan {
		f.deadLetter(b, bus.ConsumerValidatorCRM,
			f.origin(b, bus.CRMSubject(orgB, "contact", rowA), &eventsv1.CrmChange{EventId: "e"}, nil, 8), "gave up")
	}
	b.ResetTimer()
	for b.Loop() {
		p, err := f.store.List(b.Context(), Filter{Organization: orgA}, 0, 0)
		if err != nil || len(p.DeadLetters) != 0 || p.Next == 0 {
			b.Fatalf("%+v %v", p.Next, err)
		}
	}
	b.ReportMetric(float64(maxScan)*float64(b.N)/b.Elapsed().Seconds(), "letters/s")
}

// BenchmarkRedrive redrives one dead letter per iteration: read, publish,
// audit, delete.
func BenchmarkRedrive(b *testing.B) {
	f := newFixture(b)
	for range b.N {
		b.StopTimer()
		seq := f.deadLetter(b, bus.ConsumerValidatorCRM,
			f.origin(b, bus.CRMSubject(orgA, "contact", rowA), &eventsv1.CrmChange{EventId: "e"}, nil, 8), "gave up")
		b.StartTimer()
		if _, err := f.store.Redrive(b.Context(), seq, admin); err != nil {
			b.Fatal(err)
		}
	}
}
