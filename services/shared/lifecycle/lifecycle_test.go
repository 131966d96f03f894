package lifecycle_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/httpserver"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/ops"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// events records what happened, in order.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}

func index(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func listen(t *testing.T, h http.Handler) *httpserver.Server {
	t.Helper()
	srv, err := httpserver.Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestRunStopsInOrder(t *testing.T) {
	ready := &ops.Readiness{}
	ev := &events{}
	public := listen(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hi")) }))
	opsSrv := listen(t, ops.Handler(ready, prometheus.NewRegistry()))

	ns := testkit.NATSServer(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}

	workerStarted := make(chan struct{})
	worker := func(ctx context.Context) error {
		close(workerStarted)
		<-ctx.Done()
		if ready.Check() != nil {
			ev.add("worker saw not ready")
		}
		if resp, err := http.Get("http://" + public.Addr() + "/"); err == nil {
			resp.Body.Close()
			ev.add("worker saw public serving")
		}
		if nc.IsClosed() || nc.IsDraining() {
			ev.add("worker saw nats closed")
		}
		time.Sleep(50 * time.Millisecond) // in-flight work finishing
		ev.add("worker stopped")
		return nil
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- lifecycle.Run(ctx, lifecycle.Spec{
			Log:             logger(),
			Ready:           ready,
			ShutdownTimeout: 5 * time.Second,
			Ops:             opsSrv,
			Public:          []*httpserver.Server{public},
			Workers:         []func(context.Context) error{worker},
			Conns:           []*nats.Conn{nc},
			OnStopped:       []func(){func() { ev.add("stopped") }},
		})
	}()
	<-workerStarted
	testkit.WaitHTTP(t, "http://"+public.Addr()+"/", http.StatusOK, 5*time.Second)
	testkit.WaitHTTP(t, "http://"+opsSrv.Addr()+"/healthz", http.StatusOK, 5*time.Second)
	if err := ready.Check(); err != nil {
		t.Fatalf("ready before shutdown: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	got := ev.get()
	if index(got, "worker saw not ready") < 0 {
		t.Errorf("events %q: readiness still passed when the worker's context ended", got)
	}
	if index(got, "worker saw public serving") >= 0 {
		t.Errorf("events %q: the public server still served when the worker's context ended", got)
	}
	if index(got, "worker saw nats closed") >= 0 {
		t.Errorf("events %q: NATS drained before the worker stopped", got)
	}
	if i, j := index(got, "worker stopped"), index(got, "stopped"); i < 0 || j < 0 || i > j {
		t.Errorf("events %q: want the worker stopped before OnStopped", got)
	}
	if !nc.IsClosed() {
		t.Error("NATS connection not drained and closed")
	}
	if resp, err := http.Get("http://" + public.Addr() + "/"); err == nil {
		resp.Body.Close()
		t.Error("public server still serving after Run returned")
	}
	if resp, err := http.Get("http://" + opsSrv.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("ops server still serving after Run returned")
	}
}

func TestRunWorkerError(t *testing.T) {
	ready := &ops.Readiness{}
	boom := errors.New("boom")
	var otherStopped sync.WaitGroup
	otherStopped.Add(1)
	failing := func(context.Context) error { return boom }
	other := func(ctx context.Context) error {
		defer otherStopped.Done()
		<-ctx.Done()
		return nil
	}
	done := make(chan error, 1)
	go func() {
		done <- lifecycle.Run(context.Background(), lifecycle.Spec{
			Log:             logger(),
			Ready:           ready,
			ShutdownTimeout: 5 * time.Second,
			Workers:         []func(context.Context) error{failing, other},
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Errorf("Run = %v, want the worker's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a worker failed")
	}
	otherStopped.Wait()
	if ready.Check() == nil {
		t.Error("readiness still passes after a failure shut the service down")
	}
}

func TestRunShutdownTimeout(t *testing.T) {
	ready := &ops.Readiness{}
	release := make(chan struct{})
	defer close(release)
	stuck := func(ctx context.Context) error {
		<-ctx.Done()
		<-release
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err := lifecycle.Run(ctx, lifecycle.Spec{
		Log:             logger(),
		Ready:           ready,
		ShutdownTimeout: 200 * time.Millisecond,
		Workers:         []func(context.Context) error{stuck},
	})
	if err == nil {
		t.Error("Run = nil, want the shutdown timeout reported")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v with a 200ms shutdown timeout", d)
	}
}
