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

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// loadResult is what a load run measured.
type loadResult struct {
	rps      float64
	p50, p99 time.Duration
	failures int64
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
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(float64(len(all)-1)*p)]
	}
	return loadResult{rps: float64(requests) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99), failures: failures.Load()}
}

// floorHandler is the least any ingest must do: decode the JSON and publish
// it, waiting for the PubAck.
func floorHandler(js jetstream.JetStream) http.Handler {
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
		if _, err := js.Publish(ctx, "nac.crm.floor", body, jetstream.WithMsgID("floor."+opID)); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// BenchmarkEndpoint compares the real Dataverse webhook endpoint with the
// floor under 64 concurrent clients, both over loopback HTTP into the same
// embedded JetStream: requests/s, p50, p99 and the ratio of the two.
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
	svc := New(cfg, bus.NewPublisher(js, cfg.PublishTimeout), nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	real := httptest.NewServer(svc.Routes())
	defer real.Close()
	floor := httptest.NewServer(floorHandler(js))
	defer floor.Close()

	var f, r loadResult
	for b.Loop() {
		f = runLoad(b, floor.URL, template, requests, clients)
		r = runLoad(b, real.URL+"/webhooks/dataverse?code=bench-key-0123456789", template, requests, clients)
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
	b.ReportMetric(0, "ns/op")
}
