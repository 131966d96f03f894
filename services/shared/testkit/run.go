package testkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
)

// Running is a service started by RunService.
type Running struct {
	// Process is the started process; it reports its bound addresses.
	Process *lifecycle.Process
	// Logs is everything the service logged.
	Logs *SyncBuffer

	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's, once done is closed
	once   sync.Once
	stop   error
}

// RunService runs a service as its main does: start (its
// lifecycle.Command's Start) reads args and env, builds the service and
// binds its addresses; then the process runs until the test ends or Stop.
// RunService returns once /readyz answers 200.
func RunService(tb testing.TB, start func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (*lifecycle.Process, error),
	args []string, env map[string]string) *Running {
	tb.Helper()
	r := &Running{Logs: &SyncBuffer{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	p, err := start(ctx, args, func(k string) string { return env[k] }, r.Logs)
	if err != nil {
		cancel()
		tb.Fatalf("start: %v\nservice log:\n%s", err, r.Logs)
	}
	r.Process = p
	go func() {
		r.err = p.Run(ctx)
		close(r.done)
	}()
	tb.Cleanup(func() {
		if err := r.Stop(); err != nil {
			tb.Errorf("stopping the service: %v", err)
		}
		if tb.Failed() {
			tb.Logf("service log:\n%s", r.Logs)
		}
	})
	r.WaitReady(tb, http.StatusOK)
	return r
}

// OpsURL is the base URL of /healthz, /readyz and /metrics.
func (r *Running) OpsURL() string { return "http://" + r.Process.OpsAddr() }

// PublicURL is the base URL of the service's (first) public server.
func (r *Running) PublicURL() string { return "http://" + r.Process.PublicAddrs()[0] }

// WaitReady polls /readyz until it answers status, failing the test if
// the service stops first or 30 s pass.
func (r *Running) WaitReady(tb testing.TB, status int) {
	tb.Helper()
	waitHTTP(tb, r.OpsURL()+"/readyz", status, 30*time.Second, func() error {
		select {
		case <-r.done:
			return fmt.Errorf("the service stopped: %v", r.err)
		default:
			return nil
		}
	})
}

// Stop ends the run and returns Run's error; later calls return it again.
func (r *Running) Stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
			r.stop = r.err
		case <-time.After(20 * time.Second):
			r.stop = errors.New("the service did not stop within 20s")
		}
	})
	return r.stop
}
