package crmsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// staleAfter is how long a running job's heartbeat may be silent before
// another replica takes the job over (its owner died).
const staleAfter = time.Minute

// errBusy means another replica runs a job of the organization.
var errBusy = errors.New("another replica runs a sync job of this organization")

// errLostClaim means the claim is no longer ours: another replica took a
// stale job over, or a request claimed the organization for a new job
// (which does the replaced one's work).
var errLostClaim = errors.New("the sync job was replaced by a newer claim (another replica's, or a request this replica took)")

// jobs keeps the job states in bus.BucketSyncJobs, changed only by
// compare-and-set, so that exactly one replica runs an organization's job.
type jobs struct {
	kv    jetstream.KeyValue
	owner string
	now   func() time.Time
}

func (j *jobs) get(ctx context.Context, org string) (syncjobs.Status, uint64, bool, error) {
	return syncjobs.Get(ctx, j.kv, org)
}

// put stores st at rev (0: the key must not exist); false: changed meanwhile.
func (j *jobs) put(ctx context.Context, org string, st syncjobs.Status, rev uint64) (uint64, bool, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return 0, false, err
	}
	if rev == 0 {
		rev, err = j.kv.Create(ctx, syncjobs.Key(org), b)
	} else {
		rev, err = j.kv.Update(ctx, syncjobs.Key(org), b, rev)
	}
	switch {
	case err == nil:
		return rev, true, nil
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch), wrongSequence(err):
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("store sync job of %s: %w", org, err)
}

func wrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// running reports whether st is a job another replica is running now.
func (j *jobs) running(st syncjobs.Status) bool {
	return st.State == syncjobs.StateRunning && j.now().Sub(time.UnixMilli(st.Heartbeat)) < staleAfter
}

// claim makes this replica the runner of a job of org, unless another
// replica runs one (errBusy). It returns the job's state and revision.
func (j *jobs) claim(ctx context.Context, org, kind, jobID string, requestedAt time.Time) (syncjobs.Status, uint64, error) {
	for {
		cur, rev, _, err := j.get(ctx, org)
		if err != nil && rev == 0 {
			return cur, 0, err
		}
		if j.running(cur) && cur.Owner != j.owner {
			return cur, 0, errBusy
		}
		now := j.now().UnixMilli()
		next := syncjobs.Status{JobID: jobID, Kind: kind, State: syncjobs.StateRunning, Owner: j.owner,
			RequestedAt: requestedAt.UnixMilli(), StartedAt: now, Heartbeat: now,
			LastOKAt: cur.LastOKAt, DataValidation: cur.DataValidation}
		rev, ok, err := j.put(ctx, org, next, rev)
		if err != nil {
			return next, 0, err
		}
		if ok {
			return next, rev, nil
		}
	}
}

// update changes the state of org's job with change, at the latest
// revision, whatever job it is (the switch is kept beside the job).
func (j *jobs) update(ctx context.Context, org string, change func(*syncjobs.Status)) error {
	for {
		cur, rev, _, err := j.get(ctx, org)
		if err != nil && rev == 0 {
			return err
		}
		change(&cur)
		if _, ok, err := j.put(ctx, org, cur, rev); err != nil || ok {
			return err
		}
	}
}
