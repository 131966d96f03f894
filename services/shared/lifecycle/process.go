package lifecycle

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/buildinfo"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/httpserver"
	"github.com/notatcompany/notatcompany/services/shared/logging"
	"github.com/notatcompany/notatcompany/services/shared/natsconn"
	"github.com/notatcompany/notatcompany/services/shared/ops"
)

// Env is what a service's build is given: its logger, JetStream on the
// declared topology (and that topology, whose retry policies the runners
// settle by), a registerer that labels its metrics, and the process's
// readiness, to which it may add checks.
type Env struct {
	Log        *slog.Logger
	JS         jetstream.JetStream // nil for a part without NATS
	Topology   bus.Options
	Registerer prometheus.Registerer
	Ready      *ops.Readiness
}

// ServiceLabel is the label every metric of a service carries with the
// service's name. Not "service": prometheus-operator sets that target label
// to the Kubernetes Service, which would overwrite ours.
const ServiceLabel = "nac_service"

// ReplicaLabel numbers the copies of a service in a process of several
// services (the devstack), so that their series sit beside each other.
const ReplicaLabel = "replica"

// Parts are what a service runs besides its ops endpoints.
type Parts struct {
	Public  []*httpserver.Server
	Workers []func(context.Context) error
	// Backing servers serve what workers depend on; see Spec.
	Backing []*httpserver.Server
	// OnStopped runs after everything else has stopped.
	OnStopped []func()
}

// Build is a service's composition root: it makes the service's adapters,
// handlers, workers and servers. The same build runs in the service's own
// process and in the devstack.
type Build func(ctx context.Context, env Env) (Parts, error)

// Service is one service of a process.
type Service struct {
	Name string
	// Common holds the service's NATS connection and stream replicas; in a
	// process of its own also its ops address and shutdown timeout. With
	// no NATS URL the service gets no connection (env.JS is nil).
	Common conf.Common
	Build  Build
	// Replica tells copies of one service in one process apart.
	Replica int
	// Around, when set, runs the service's connection and build, so that
	// the goroutines they start inherit what it sets up (the devstack's
	// profiling labels).
	Around func(func())
}

// Options of a process.
type Options struct {
	Log             *slog.Logger
	OpsAddr         string // /healthz, /readyz and /metrics of every service
	ShutdownTimeout time.Duration
}

// Process is started: every service is built and every address bound.
// Run serves it.
type Process struct{ spec Spec }

// OpsAddr is the bound address of the ops server.
func (p *Process) OpsAddr() string { return p.spec.Ops.Addr() }

// PublicAddrs are the bound addresses of the public servers, in the order
// of the services that made them.
func (p *Process) PublicAddrs() []string {
	addrs := make([]string, len(p.spec.Public))
	for i, s := range p.spec.Public {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Run serves until ctx ends or a part fails, then stops in the order of
// Run (the package function).
func (p *Process) Run(ctx context.Context) error { return Run(ctx, p.spec) }

// StartService starts a process of one service the way every service
// runs: JSON or text logs, one NATS connection, the topology declared,
// and /healthz, /readyz and /metrics on the ops address.
func StartService(ctx context.Context, name string, c conf.Common, stdout io.Writer, build Build) (*Process, error) {
	log, err := logging.New(stdout, c.LogFormat, c.LogLevel)
	if err != nil {
		return nil, err
	}
	return Start(ctx, Options{Log: log, OpsAddr: c.OpsAddr, ShutdownTimeout: c.ShutdownTimeout}, Service{Name: name, Common: c, Build: build})
}

// Start builds services in one process, in order: each gets its own NATS
// connection (readiness fails while it is down) with the topology declared
// on it, its own logger and labelled metrics, and its build. One ops server
// serves them all. On an error everything started is released.
func Start(ctx context.Context, o Options, services ...Service) (_ *Process, err error) {
	reg := ops.NewRegistry()
	ready := &ops.Readiness{}
	log := o.Log
	if len(services) == 1 {
		log = log.With("service", services[0].Name)
	}
	var (
		built    []Parts
		conns    []*nats.Conn
		declared = map[int]bool{}
		copies   = map[string]int{}
	)
	defer func() {
		if err != nil {
			release(built, conns)
		}
	}()
	for _, s := range services {
		copies[s.Name]++
	}
	for _, s := range services {
		id, env := s.Name, Env{Log: log, Topology: bus.DefaultOptions(), Ready: ready}
		labels := prometheus.Labels{ServiceLabel: s.Name}
		if len(services) > 1 {
			env.Log = log.With("service", s.Name)
			labels[ReplicaLabel] = strconv.Itoa(s.Replica)
		}
		if copies[s.Name] > 1 {
			id = s.Name + "-" + strconv.Itoa(s.Replica)
			env.Log = env.Log.With(ReplicaLabel, s.Replica)
		}
		env.Registerer = prometheus.WrapRegistererWith(labels, reg)
		if err := env.Registerer.Register(buildinfo.Get().Collector()); err != nil {
			return nil, fmt.Errorf("%s: register nac_build_info: %w", id, err)
		}
		around := s.Around
		if around == nil {
			around = func(f func()) { f() }
		}
		if s.Common.NATSURL != "" {
			var nc *nats.Conn
			around(func() { nc, err = natsconn.ConnectCommon(s.Common, "nac-"+id, env.Log) })
			if err != nil {
				return nil, err
			}
			conns = append(conns, nc)
			check := "nats"
			if len(services) > 1 {
				check = id + " nats"
			}
			ready.Add(check, natsconn.Ready(nc))
			if env.JS, err = jetstream.New(nc); err != nil {
				return nil, fmt.Errorf("jetstream: %w", err)
			}
			env.Topology.Replicas = s.Common.StreamReplicas
			// Every service declares the topology it relies on; services
			// sharing a process share one declaration.
			if !declared[env.Topology.Replicas] {
				if err := bus.Declare(ctx, env.JS, env.Topology); err != nil {
					return nil, err
				}
				declared[env.Topology.Replicas] = true
			}
		}
		var parts Parts
		around(func() { parts, err = s.Build(ctx, env) })
		if err != nil {
			if len(services) > 1 {
				err = fmt.Errorf("%s: %w", id, err)
			}
			return nil, err
		}
		built = append(built, parts)
	}
	opsSrv, err := httpserver.Listen(o.OpsAddr, ops.Handler(ready, reg))
	if err != nil {
		return nil, err
	}
	spec := Spec{Log: log, Ready: ready, ShutdownTimeout: o.ShutdownTimeout, Ops: opsSrv, Conns: conns}
	for _, p := range built {
		spec.Public = append(spec.Public, p.Public...)
		spec.Backing = append(spec.Backing, p.Backing...)
		spec.Workers = append(spec.Workers, p.Workers...)
	}
	// What a later service built may rely on an earlier one's: it stops first.
	for _, p := range slices.Backward(built) {
		spec.OnStopped = append(spec.OnStopped, p.OnStopped...)
	}
	return &Process{spec: spec}, nil
}

// release undoes a start that failed: listeners closed, connections
// closed, and what should run once stopped run, last built first.
func release(built []Parts, conns []*nats.Conn) {
	for _, p := range built {
		for _, srv := range append(slices.Clone(p.Public), p.Backing...) {
			_ = srv.Close()
		}
	}
	for _, nc := range conns {
		nc.Close()
	}
	for _, p := range slices.Backward(built) {
		for _, f := range p.OnStopped {
			f()
		}
	}
}

// Command is a service as its main knows it: its name, how its
// configuration is read and its common settings found, and its build.
type Command[C any] struct {
	Name   string
	Parse  func(args []string, getenv func(string) string, out io.Writer) (C, error)
	Common func(C) conf.Common
	Build  func(context.Context, C, Env) (Parts, error)
}

// Start reads the configuration, builds the service (StartService) and
// binds its addresses.
func (c Command[C]) Start(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (*Process, error) {
	cfg, err := c.Parse(args, getenv, stdout)
	if err != nil {
		return nil, err
	}
	return StartService(ctx, c.Name, c.Common(cfg), stdout, func(ctx context.Context, env Env) (Parts, error) {
		return c.Build(ctx, cfg, env)
	})
}

// Run starts the service and runs it until ctx ends; it is what Main runs.
func (c Command[C]) Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	p, err := c.Start(ctx, args, getenv, stdout)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}
