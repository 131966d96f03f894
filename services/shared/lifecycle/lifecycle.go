// Package lifecycle runs a service's parts and stops them in the order that
// loses nothing: readiness fails first, public servers stop taking requests,
// consumers stop pulling and finish what they hold, the NATS connection
// drains, and the ops server goes last.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/notatcompany/notatcompany/services/shared/httpserver"
	"github.com/notatcompany/notatcompany/services/shared/ops"
)

// Spec lists the parts of a running service.
type Spec struct {
	Log             *slog.Logger
	Ready           *ops.Readiness
	ShutdownTimeout time.Duration
	// Ops serves /healthz, /readyz and /metrics; it stops last.
	Ops *httpserver.Server
	// Public servers stop taking requests right after readiness fails.
	Public []*httpserver.Server
	// Backing servers serve what the workers depend on (the devstack's
	// Dataverse stand-in); they stop once the NATS connections drained.
	Backing []*httpserver.Server
	// Workers run until their context ends and then finish in-flight work.
	Workers []func(ctx context.Context) error
	// Conns are drained once the workers are done.
	Conns []*nats.Conn
	// OnStopped runs after everything else has stopped.
	OnStopped []func()
}

// Run starts every part and blocks until ctx ends or a part fails, then
// shuts down in order. It returns the first failure, or nil on a clean stop.
func Run(ctx context.Context, s Spec) error {
	failed := make(chan error, 1+len(s.Public)+len(s.Backing)+len(s.Workers))
	servers := append(append([]*httpserver.Server{s.Ops}, s.Backing...), s.Public...)
	for _, srv := range servers {
		if srv == nil {
			continue
		}
		go func() {
			if err := srv.Serve(); err != nil {
				failed <- err
			}
		}()
		s.Log.Info("listening", "addr", srv.Addr())
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var workers sync.WaitGroup
	for _, w := range s.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			if err := w(workCtx); err != nil {
				failed <- err
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
		s.Log.Info("shutting down")
	case runErr = <-failed:
		s.Log.Error("a part failed; shutting down", "err", runErr)
	}

	deadline, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	var errs []error
	s.Ready.Drain()
	for _, srv := range s.Public {
		if err := srv.Shutdown(deadline); err != nil {
			errs = append(errs, fmt.Errorf("shutdown %s: %w", srv.Addr(), err))
		}
	}
	stopWork()
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-deadline.Done():
		errs = append(errs, errors.New("in-flight work did not finish before the shutdown timeout"))
	}
	for _, nc := range s.Conns {
		drainConn(deadline, nc, s.Log)
	}
	for _, srv := range s.Backing {
		if err := srv.Shutdown(deadline); err != nil {
			errs = append(errs, fmt.Errorf("shutdown %s: %w", srv.Addr(), err))
		}
	}
	if s.Ops != nil {
		if err := s.Ops.Shutdown(deadline); err != nil {
			errs = append(errs, fmt.Errorf("shutdown ops: %w", err))
		}
	}
	for _, f := range s.OnStopped {
		f()
	}
	if runErr != nil {
		return runErr
	}
	return errors.Join(errs...)
}

func drainConn(ctx context.Context, nc *nats.Conn, log *slog.Logger) {
	if nc.IsClosed() {
		return
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-ctx.Done():
		log.Warn("nats drain timed out; closing")
		nc.Close()
	}
}
