// Package syncjobs is the state of each organization's sync job (back-fill
// or reconciliation sweep) as the sync workers keep it in JetStream KV,
// and as the admin API and nacctl read it.
package syncjobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// Kinds of job.
const (
	KindBackfill = "backfill" // every table read in full
	KindSweep    = "sweep"    // delta reads from the stored delta links
	KindEnable   = "enable"   // decisions already made are written, then a back-fill
)

// States of a job.
const (
	StateRunning = "running"
	StateDone    = "done"
	StateFailed  = "failed"
)

// Table is the progress of one table's read.
type Table struct {
	Name string `json:"table"`
	// Mode: "delta", "full", "full (token expired)", "full (change tracking off)".
	Mode    string `json:"mode,omitempty"`
	Rows    int    `json:"rows"`
	Deleted int    `json:"deleted"`
	Pages   int    `json:"pages"`
	// Total is Dataverse's count of the table's rows (0: unknown).
	Total int  `json:"total,omitempty"`
	Done  bool `json:"done"`
}

// Status is an organization's last (or running) sync job.
type Status struct {
	JobID  string  `json:"jobId,omitempty"`
	Kind   string  `json:"kind,omitempty"`
	State  string  `json:"state,omitempty"`
	Owner  string  `json:"owner,omitempty"`
	Error  string  `json:"error,omitempty"`
	Tables []Table `json:"tables,omitempty"`
	// EventsPublished are the rows and deletes fed into the pipeline.
	EventsPublished int `json:"eventsPublished"`
	// ContactsEvaluated are the contact rows the validator has applied.
	ContactsEvaluated int `json:"contactsEvaluated"`
	// FlagsToWrite are the decisions the writer has still to write.
	FlagsToWrite int `json:"flagsToWrite"`
	// DecisionsRewritten are decisions made while data validation was off
	// (or whose write was lost) handed to the writer again.
	DecisionsRewritten int `json:"decisionsRewritten"`
	// Overrides are people's values over our decision the job found.
	Overrides int `json:"overrides"`
	// Requests are the Dataverse requests the job spent.
	Requests    int   `json:"requests"`
	RequestedAt int64 `json:"requestedAt,omitempty"` // unix ms
	StartedAt   int64 `json:"startedAt,omitempty"`
	Heartbeat   int64 `json:"heartbeat,omitempty"`
	FinishedAt  int64 `json:"finishedAt,omitempty"`
	// LastOKAt is when the last job of the organization succeeded.
	LastOKAt int64 `json:"lastOkAt,omitempty"`
	// DataValidation is the switch as the sync workers last saw it.
	DataValidation bool `json:"dataValidation"`
}

// Key of an organization in bus.BucketSyncJobs.
func Key(org string) string { return bus.Token(org) }

// Reader reads job states.
type Reader struct{ kv jetstream.KeyValue }

// NewReader binds the bucket bus.Declare created.
func NewReader(ctx context.Context, js jetstream.JetStream) (*Reader, error) {
	kv, err := js.KeyValue(ctx, bus.BucketSyncJobs)
	if err != nil {
		return nil, fmt.Errorf("bind bucket %s: %w", bus.BucketSyncJobs, err)
	}
	return &Reader{kv: kv}, nil
}

// Get returns an organization's job state and its revision; found is
// false when the organization never had one.
func Get(ctx context.Context, kv jetstream.KeyValue, org string) (st Status, rev uint64, found bool, err error) {
	e, err := kv.Get(ctx, Key(org))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Status{}, 0, false, nil
	}
	if err != nil {
		return Status{}, 0, false, fmt.Errorf("read sync job of %s: %w", org, err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return Status{}, e.Revision(), true, fmt.Errorf("decode sync job of %s: %w", org, err)
	}
	return st, e.Revision(), true, nil
}

// Status returns an organization's job state, and whether it has one.
func (r *Reader) Status(ctx context.Context, org string) (Status, bool, error) {
	st, _, found, err := Get(ctx, r.kv, org)
	return st, found, err
}
