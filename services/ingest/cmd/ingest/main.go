// Command ingest serves the webhook endpoints of notatcompany and publishes
// what it receives to JetStream.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/ingest"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/httpserver"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/logging"
	"github.com/notatcompany/notatcompany/services/shared/natsconn"
	"github.com/notatcompany/notatcompany/services/shared/ops"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

// run is the composition root: it builds every concrete adapter and hands
// the service only what it needs.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := ingest.ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	log, err := logging.New(stdout, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	log = log.With("service", "ingest")
	reg := ops.NewRegistry()

	nc, err := natsconn.Connect(cfg.NATSURL, "nac-ingest", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	topo := bus.DefaultOptions()
	topo.Replicas = cfg.StreamReplicas
	if err := bus.Declare(ctx, js, topo); err != nil {
		return err
	}

	admin, err := orgs.NewReader(ctx, js)
	if err != nil {
		return err
	}
	svc := ingest.New(cfg, bus.NewPublisher(js, cfg.PublishTimeout), log,
		prometheus.WrapRegistererWith(prometheus.Labels{"service": "ingest"}, reg), ingest.WithAdmin(admin))
	ready := &ops.Readiness{}
	ready.Add("nats", natsconn.Ready(nc))
	opsSrv, err := httpserver.Listen(cfg.OpsAddr, ops.Handler(ready, reg))
	if err != nil {
		return err
	}
	public, err := httpserver.Listen(cfg.HTTPAddr, svc.Routes())
	if err != nil {
		return err
	}
	return lifecycle.Run(ctx, lifecycle.Spec{
		Log: log, Ready: ready, ShutdownTimeout: cfg.ShutdownTimeout,
		Ops: opsSrv, Public: []*httpserver.Server{public}, Conns: []*nats.Conn{nc},
	})
}
