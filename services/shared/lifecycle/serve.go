package lifecycle

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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

// Env is what a service's composition root is given: its logger, JetStream
// on the declared topology (and that topology, whose retry policies the
// runners settle by), and a registerer that labels its metrics.
type Env struct {
	Log        *slog.Logger
	JS         jetstream.JetStream
	Topology   bus.Options
	Registerer prometheus.Registerer
}

// ServiceLabel is the label every metric of a service carries with the
// service's name. Not "service": prometheus-operator sets that target label
// to the Kubernetes Service, which would overwrite ours.
const ServiceLabel = "nac_service"

// Parts are what a service runs besides its ops endpoints.
type Parts struct {
	Public  []*httpserver.Server
	Workers []func(context.Context) error
}

// Serve runs one service the way every service runs: JSON or text logs,
// one NATS connection, the topology declared, /healthz, /readyz and
// /metrics (with nac_build_info) on the ops address, and the shutdown order
// of Run. build is the
// service's own composition root.
func Serve(ctx context.Context, name string, c conf.Common, stdout io.Writer, build func(context.Context, Env) (Parts, error)) error {
	log, err := logging.New(stdout, c.LogFormat, c.LogLevel)
	if err != nil {
		return err
	}
	log = log.With("service", name)
	reg := ops.NewRegistry()
	registerer := prometheus.WrapRegistererWith(prometheus.Labels{ServiceLabel: name}, reg)
	if err := registerer.Register(buildinfo.Get().Collector()); err != nil {
		return fmt.Errorf("register nac_build_info: %w", err)
	}
	nc, err := natsconn.ConnectCommon(c, "nac-"+name, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	topo := bus.DefaultOptions()
	topo.Replicas = c.StreamReplicas
	if err := bus.Declare(ctx, js, topo); err != nil {
		return err
	}
	parts, err := build(ctx, Env{Log: log, JS: js, Topology: topo, Registerer: registerer})
	if err != nil {
		return err
	}
	ready := &ops.Readiness{}
	ready.Add("nats", natsconn.Ready(nc))
	opsSrv, err := httpserver.Listen(c.OpsAddr, ops.Handler(ready, reg))
	if err != nil {
		return err
	}
	return Run(ctx, Spec{
		Log: log, Ready: ready, ShutdownTimeout: c.ShutdownTimeout,
		Ops: opsSrv, Public: parts.Public, Workers: parts.Workers, Conns: []*nats.Conn{nc},
	})
}

// Main is a service's main: it runs run with the process's arguments,
// environment and stdout until SIGINT or SIGTERM, and exits 1 on an error.
func Main(name string, run func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, name+":", err)
		stop()
		os.Exit(1)
	}
}
