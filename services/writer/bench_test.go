package writer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
	"github.com/notatcompany/notatcompany/services/writer"
)

const benchOrg = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"

// benchStack is a writer over an embedded JetStream and a stand-in.
type benchStack struct {
	js       jetstream.JetStream
	standin  *dataversetest.Server
	contacts []string
	stop     func()
}

func startBench(b *testing.B, contacts, replicas int, standinOpts dataversetest.Options, env map[string]string) *benchStack {
	b.Helper()
	js, _ := testkit.JetStream(b)
	ctx := context.Background()
	// Data validation is on for the organization, as an admin would set it.
	settings, _ := js.KeyValue(ctx, bus.BucketOrgs)
	on, _ := json.Marshal(orgs.Settings{DataValidation: true})
	if _, err := settings.Put(ctx, orgs.SettingsKey(benchOrg), on); err != nil {
		b.Fatal(err)
	}
	standinOpts.ClientID, standinOpts.ClientSecret = "bench", "bench-secret"
	standin := dataversetest.New(standinOpts)
	srv := httptest.NewServer(standin.Handler())
	b.Cleanup(srv.Close)
	s := &benchStack{js: js, standin: standin}
	for range contacts {
		id := uuid.NewString()
		standin.Seed("contacts", id, map[string]any{"nac_orgchangestatus": 0})
		s.contacts = append(s.contacts, id)
	}
	vars := map[string]string{
		"NAC_DATAVERSE_URL": srv.URL, "NAC_DATAVERSE_TOKEN_URL": srv.URL + dataversetest.TokenPath,
		"NAC_DATAVERSE_CLIENT_ID": "bench", "NAC_DATAVERSE_CLIENT_SECRET": "bench-secret",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := writer.ParseConfig(nil, func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	// Replicas share the consumer, the leases and the budget, each with its
	// own registry, as pods do.
	var loops []func(context.Context) error
	for range replicas {
		parts, err := writer.Build(runCtx, cfg, lifecycle.Env{Log: slog.New(slog.DiscardHandler), JS: js, Topology: bus.DefaultOptions(),
			Registerer: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		loops = append(loops, parts.Workers...)
	}
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); _ = l(runCtx) }()
	}
	s.stop = func() { cancel(); wg.Wait() }
	b.Cleanup(s.stop)
	return s
}

// publish sends one Not at Company decision per contact, asynchronously,
// and returns when each was published.
func (s *benchStack) publish(b *testing.B) map[string]time.Time {
	b.Helper()
	sent := make(map[string]time.Time, len(s.contacts))
	futures := make([]jetstream.PubAckFuture, 0, len(s.contacts))
	wait := func() {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		futures = futures[:0]
	}
	for _, id := range s.contacts {
		d := &eventsv1.Decision{DecisionId: uuid.NewString(), OrganizationId: benchOrg, ContactId: id,
			Value: eventsv1.Flag_FLAG_NOT_AT_COMPANY, DecidedAt: timestamppb.Now()}
		data, _ := protoMarshal(d)
		sent[id] = time.Now()
		f, err := s.js.PublishAsync(bus.DecisionSubject(benchOrg, id), data, jetstream.WithMsgID(d.GetDecisionId()))
		if err != nil {
			b.Fatal(err)
		}
		// Acknowledged a thousand at a time: a loaded machine would stall
		// the client's window of unacknowledged publishes.
		if futures = append(futures, f); len(futures) == 1000 {
			wait()
		}
	}
	wait()
	return sent
}

// waitWritten waits until n PATCHes reached the stand-in.
func (s *benchStack) waitWritten(b *testing.B, n int, within time.Duration) []dataversetest.Received {
	b.Helper()
	deadline := time.Now().Add(within)
	for s.standin.Patches() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d writes after %s", s.standin.Patches(), n, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s.standin.Received()
}

func percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	return ds[int(float64(len(ds)-1)*p)]
}

// BenchmarkWriterEngine writes a backlog of decisions with the budget off:
// contact writes per second, and p50/p99 from decision published to PATCH
// received, with $batch and with one PATCH per decision.
func BenchmarkWriterEngine(b *testing.B) {
	for _, pending := range []int{1000, 10000} {
		rates := map[int]float64{}
		for _, batch := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("pending=%d/batch=%d", pending, batch), func(b *testing.B) {
				var rate float64
				var p50, p99 time.Duration
				for b.Loop() {
					s := startBench(b, pending, 1, dataversetest.Options{}, map[string]string{
						"NAC_BUDGET_OFF": "true", "NAC_BATCH_SIZE": strconv.Itoa(batch), "NAC_WORKERS": "8",
					})
					start := time.Now()
					sent := s.publish(b)
					got := s.waitWritten(b, pending, 60*time.Second)
					elapsed := time.Since(start)
					lat := make([]time.Duration, 0, len(got))
					for _, r := range got {
						lat = append(lat, r.At.Sub(sent[r.ID]))
					}
					rate, p50, p99 = float64(pending)/elapsed.Seconds(), percentile(lat, 0.5), percentile(lat, 0.99)
					s.stop()
				}
				rates[batch] = rate
				b.ReportMetric(rate, "writes/s")
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
				if batch > 1 && rates[1] > 0 {
					b.ReportMetric(rate/rates[1], "x_vs_single_patch")
				}
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
