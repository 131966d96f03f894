package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/notatcompany/notatcompany/services/ingest/remotecontext"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// loadResult is what a load run measured.
type loadResult struct {
	rps       float64
	p50, p99  time.Duration
	failures  int64
	latencies []time.Duration // sorted
	elapsed   time.Duration
}

// combine sums legs of one endpoint: requests over the time they took,
// percentiles over every request.
func combine(legs []loadResult) loadResult {
	var out loadResult
	n := 0
	for _, l := range legs {
		out.latencies = append(out.latencies, l.latencies...)
		out.elapsed += l.elapsed
		out.failures += l.failures
		n += len(l.latencies) + int(l.failures)
	}
	slices.Sort(out.latencies)
	out.rps = float64(n) / out.elapsed.Seconds()
	out.p50, out.p99 = percentile(out.latencies, 0.50), percentile(out.latencies, 0.99)
	return out
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p)]
}

// runLoad posts requests bodies from clients concurrent clients and measures
// throughput and latency. Each body gets a fresh OperationId, so nothing is
// deduplicated away.
func runLoad(b *testing.B, url string, template []byte, requests, clients int) loadResult {
	b.Helper()
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	const opID = "4af10637-4ea2-e711-8122-000d3aa2331c"
	var next, failures atomic.Int64
	latencies := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(requests) {
					return
				}
				body := bytes.ReplaceAll(template, []byte(opID), fmt.Appendf(nil, "4af10637-4ea2-e711-8122-%012d", i))
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					failures.Add(1)
				}
				latencies[c] = append(latencies[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(latencies...)
	slices.Sort(all)
	return loadResult{rps: float64(requests) / elapsed.Seconds(), p50: percentile(all, 0.50), p99: percentile(all, 0.99),
		failures: failures.Load(), latencies: all, elapsed: elapsed}
}

// floorHandler is the least any ingest must do: decode the JSON and publish
// a message of the size the real endpoint publishes for it (size bytes:
// the normalized change, not the raw body), waiting for the PubAck.
func floorHandler(js jetstream.JetStream, size int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		opID, _ := doc["OperationId"].(string)
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		payload := bytes.Repeat([]byte{'x'}, size)
		copy(payload, opID)
		if _, err := js.Publish(ctx, "nac.crm.floor", payload, jetstream.WithMsgID("floor."+opID)); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// BenchmarkEndpoint compares the real Dataverse webhook endpoint with the
// floor under 64 concurrent clients, both over loopback HTTP into the same
// embedded JetStream: requests/s, p50, p99 and the ratio of the two. The
// floor publishes as many bytes as the endpoint does, and the two take
// turns in short legs, so that a slower moment of a shared machine falls
// on both alike.
func BenchmarkEndpoint(b *testing.B) {
	const clients = 64
	requests := 20000
	if testing.Short() {
		requests = 2000
	}
	js, _ := testkit.JetStream(b)
	template, err := os.ReadFile("remotecontext/testdata/msdocs-update-contact.json")
	if err != nil {
		b.Fatal(err)
	}

	cfg := Config{DataverseKeys: []string{"bench-key-0123456789"}, ProfileSecrets: []string{"bench-secret-0123456789"},
		PublishTimeout: 5 * time.Second, DataverseMaxBodyBytes: 4 << 20, ProfileMaxBodyBytes: 1 << 20, MaxInflightBytes: 32 << 20, Tables: []string{"contact", "account"}, WriteTag: "notatcompany"}
	svc := New(cfg, bus.NewPublisher(js, cfg.PublishTimeout), nil, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	real := httptest.NewServer(svc.Routes())
	defer real.Close()
	ch, err := remotecontext.Parse(template, remotecontext.Options{ReceivedAt: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	published, err := proto.Marshal(ch)
	if err != nil {
		b.Fatal(err)
	}
	floor := httptest.NewServer(floorHandler(js, len(published)))
	defer floor.Close()

	const legs = 8
	var f, r loadResult
	for b.Loop() {
		var fs, rs []loadResult
		for range legs {
			fs = append(fs, runLoad(b, floor.URL, template, requests/legs, clients))
			rs = append(rs, runLoad(b, real.URL+"/webhooks/dataverse?code=bench-key-0123456789", template, requests/legs, clients))
		}
		f, r = combine(fs), combine(rs)
	}
	if f.failures+r.failures > 0 {
		b.Fatalf("failed requests: floor %d, ingest %d", f.failures, r.failures)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(f.rps, "floor_req/s")
	b.ReportMetric(r.rps, "ingest_req/s")
	b.ReportMetric(r.rps/f.rps, "ingest/floor")
	b.ReportMetric(ms(f.p50), "floor_p50_ms")
	b.ReportMetric(ms(f.p99), "floor_p99_ms")
	b.ReportMetric(ms(r.p50), "ingest_p50_ms")
	b.ReportMetric(ms(r.p99), "ingest_p99_ms")
	b.ReportMetric(float64(len(published)), "published_bytes")
	b.ReportMetric(0, "ns/op")
}
