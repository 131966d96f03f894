package crmsync

import (
	"context"
	"log/slog"
	"net/url"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Reader is what the sync workers need of a Dataverse environment: the
// writer's client, whose rate-limit answers already reach the budget.
type Reader interface {
	ReadPage(ctx context.Context, q dataverse.PageQuery) (*dataverse.Page, error)
	GetRow(ctx context.Context, entitySet, id string, columns ...string) (map[string]any, error)
	TotalRecordCounts(ctx context.Context, tables ...string) (map[string]int, error)
	Get(ctx context.Context, res dataverse.Resource, query url.Values, opts *dataverse.RequestOptions, out any) error
}

// Target is one organization's environment as the writer holds it.
type Target struct {
	Reader Reader
	// Acquire takes n requests from the environment's one budget (shared
	// with the writer's writes and every replica) and returns the release
	// to call once they are answered.
	Acquire func(ctx context.Context, n int) (release func(), err error)
}

// Deps are the sync workers' adapters.
type Deps struct {
	JS jetstream.JetStream
	// Targets returns an organization's environment; nil: none (a dry run),
	// and the organization is not read.
	Targets func(org string) *Target
	// Owner names this replica in the job states.
	Owner      string
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// BusMetrics are the consumer metrics of the process (registered once).
	BusMetrics *bus.Metrics
}
