package ingest

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/ingest/profilefeed"
)

// hostileHeapBound is the documented bound (README, chart values) on the
// heap ingest holds, at its default limits, under the attack below; the
// chart's memory limit is 256 MiB.
const hostileHeapBound = 128 << 20

// heapPeak samples the heap in use until stopped and returns the peak.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse+ms.StackInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// TestMemoryBoundedUnderHostileConcurrency sends 256 concurrent 4 MiB
// bodies that nobody signed (the attack of issue 9 drove ingest to 943 MiB)
// at the default limits, while a legitimate source and Dataverse keep
// posting; the heap stays under hostileHeapBound and every legitimate
// request is taken (a 503 with Retry-After is retried, as both senders do).
func TestMemoryBoundedUnderHostileConcurrency(t *testing.T) {
	if testing.Short() {
		t.Skip("moves a GiB over loopback")
	}
	env := map[string]string{"NAC_DATAVERSE_WEBHOOK_KEY": testKey, "NAC_PROFILE_SECRET": testSecret}
	cfg, err := ParseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	pub := &fakePublisher{}
	svc := New(cfg, pub, nil, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	srv := httptest.NewServer(svc.Routes())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 60 * time.Second}
	defer client.CloseIdleConnections()

	const attackers, size = 256, 4 << 20
	junk := bytes.Repeat([]byte(`{"x":"`+strings.Repeat("y", 1000)+`"},`), size/1008+1)[:size]
	forged := strings.Repeat("0f", 32)
	attack := func(i int) (*http.Request, error) {
		target, header := srv.URL+"/webhooks/profile", map[string]string{}
		var body io.Reader = bytes.NewReader(junk)
		length := int64(size)
		switch i % 4 {
		case 0: // unsigned, declared length
		case 1: // a forged signature, unknown length: read up to the limit
			header["X-LI-Signature"] = forged
			body, length = io.MultiReader(bytes.NewReader(junk)), -1
		case 2: // a forged signature, declared length
			header["X-LI-Signature"] = forged
		case 3: // Dataverse with a wrong key
			target = srv.URL + "/webhooks/dataverse?code=wrong-key-0000000000"
		}
		req, err := http.NewRequest(http.MethodPost, target, body)
		if err != nil {
			return nil, err
		}
		req.ContentLength = length
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		return req, nil
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	peakc := heapPeak(stop)

	var wg sync.WaitGroup
	var refused atomic.Int64
	start := make(chan struct{})
	for i := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, err := attack(i)
			if err != nil {
				t.Error(err)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				refused.Add(1) // the server closed the connection on a refused body
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("attack %d answered %d", i, resp.StatusCode)
			}
			refused.Add(1)
		}()
	}

	// Legitimate traffic during the attack.
	var legit, retries atomic.Int64
	legitDone := make(chan struct{})
	go func() {
		defer close(legitDone)
		<-start
		for i := 0; i < 40; i++ {
			var target string
			var body []byte
			header := map[string]string{}
			if i%2 == 0 {
				body = profileBody(t, fmt.Sprintf("legit-%d", i))
				target, header["X-LI-Signature"] = srv.URL+"/webhooks/profile", profilefeed.Sign(testSecret, body)
			} else {
				body = withChanges(t, contactFixture(t), func(doc map[string]any) {
					doc["OperationId"] = fmt.Sprintf("0aaaaaaa-0000-4000-8000-%012d", i)
				})
				target = srv.URL + dataverseURL(testKey)
			}
			for attempt := 0; ; attempt++ {
				req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				for k, v := range header {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("legitimate request %d: %v", i, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					legit.Add(1)
					break
				}
				if resp.StatusCode != http.StatusServiceUnavailable || attempt == 4 {
					t.Errorf("legitimate request %d: %d after %d retries", i, resp.StatusCode, attempt)
					return
				}
				retries.Add(1)
				wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				time.Sleep(time.Duration(wait) * time.Second)
			}
		}
	}()

	began := time.Now()
	close(start)
	wg.Wait()
	<-legitDone
	close(stop)
	peak := <-peakc
	took := time.Since(began)

	grown := int64(peak) - int64(before.HeapInuse+before.StackInuse)
	t.Logf("%d hostile 4 MiB bodies (%d refused) and %d legitimate requests (%d retries after 503) in %v; heap in use %.1f MiB before, peak %.1f MiB (+%.1f MiB); bound %d MiB",
		attackers, refused.Load(), legit.Load(), retries.Load(), took.Round(time.Millisecond),
		mib(before.HeapInuse+before.StackInuse), mib(peak), float64(grown)/(1<<20), hostileHeapBound>>20)
	if peak > hostileHeapBound {
		t.Errorf("peak heap %.1f MiB, over the %d MiB bound", mib(peak), hostileHeapBound>>20)
	}
	if legit.Load() != 40 {
		t.Errorf("%d of 40 legitimate requests taken", legit.Load())
	}
	if n := len(pub.stored()); n != 40 {
		t.Errorf("%d events published, want the 40 legitimate ones", n)
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
