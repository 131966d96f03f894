// Package ops serves what operators and Kubernetes probe: /healthz
// (the process is alive), /readyz (it should get traffic) and /metrics.
package ops

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness answers /readyz. It fails as soon as shutdown begins, before
// anything stops, so that traffic moves elsewhere first.
type Readiness struct {
	draining atomic.Bool
	mu       sync.Mutex
	checks   []check
}

type check struct {
	name string
	fn   func() error
}

// Add registers a named readiness check.
func (r *Readiness) Add(name string, fn func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, check{name, fn})
}

// Drain makes readiness fail from now on.
func (r *Readiness) Drain() { r.draining.Store(true) }

// Check returns nil when ready, or every failing check.
func (r *Readiness) Check() error {
	if r.draining.Load() {
		return errors.New("shutting down")
	}
	r.mu.Lock()
	checks := append([]check(nil), r.checks...)
	r.mu.Unlock()
	var errs []error
	for _, c := range checks {
		if err := c.fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// Handler serves /healthz, /readyz and /metrics.
func Handler(ready *Readiness, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready.Check(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
