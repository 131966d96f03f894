package writer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Workers wires the writer to its durable consumer and to Dataverse (none
// in a dry run) and returns the loop to run.
func Workers(ctx context.Context, cfg Config, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) ([]func(context.Context) error, error) {
	var dv FlagWriter
	if cfg.DryRun() {
		log.Warn("dry run: no NAC_DATAVERSE_URL, decisions are recorded as would_write and nothing is sent")
	} else {
		// Token fetches must outlive shutdown's start: in-flight writes finish.
		client, err := dataverse.New(context.WithoutCancel(ctx), cfg.DataverseURL, dataverse.Credentials{
			TokenURL: cfg.TokenURL, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Scope: cfg.Scope,
		}, cfg.RequestTimeout)
		if err != nil {
			return nil, err
		}
		dv = client
	}
	pub := bus.NewPublisher(js, 5*time.Second)
	svc := New(cfg, dv, pub, log, reg)
	cons, err := js.Consumer(ctx, bus.StreamDecisions, bus.ConsumerWriter)
	if err != nil {
		return nil, fmt.Errorf("bind consumer %s: %w", bus.ConsumerWriter, err)
	}
	r := &bus.Runner{
		Name: bus.ConsumerWriter, Consumer: cons, Handler: svc.HandleDecision, Publisher: pub,
		Workers: cfg.Workers, MaxDeliver: bus.DefaultOptions().MaxDeliver, HandleTimeout: cfg.HandleTimeout,
		Logger: log, Metrics: bus.NewMetrics(reg),
	}
	return []func(context.Context) error{r.Run}, nil
}
