package crmsync

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const jobOrg = "44444444-4444-4444-4444-444444444444"

// twoReplicas are two sync workers on one JetStream, as the devstack's two
// writers in one process: each claims as its own owner.
func twoReplicas(t *testing.T) (a, b *Service) {
	t.Helper()
	js, _ := testkit.JetStream(t)
	kv, err := js.KeyValue(context.Background(), bus.BucketSyncJobs)
	if err != nil {
		t.Fatal(err)
	}
	replica := func(owner string) *Service {
		return &Service{js: js, now: time.Now, jobs: &jobs{kv: kv, owner: owner, now: time.Now}}
	}
	return replica("host/1/a"), replica("host/1/b")
}

func TestAClaimedJobIsBusyForTheOtherReplica(t *testing.T) {
	ctx := context.Background()
	a, b := twoReplicas(t)
	if _, _, err := a.jobs.claim(ctx, jobOrg, syncjobs.KindSweep, "sweep-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.jobs.claim(ctx, jobOrg, syncjobs.KindSweep, "sweep-2", time.Now()); !errors.Is(err, errBusy) {
		t.Fatalf("second replica's claim: %v, want errBusy", err)
	}
	// The owner itself may claim again (a request it took replaces its job).
	if _, _, err := a.jobs.claim(ctx, jobOrg, syncjobs.KindBackfill, "backfill-1", time.Now()); err != nil {
		t.Fatalf("the owner's own new claim: %v", err)
	}
}

// The switch of data validation is recorded beside the running job; the
// job's next heartbeat must take it over, not give up as if replaced.
func TestSaveKeepsTheJobThroughASettingsChange(t *testing.T) {
	ctx := context.Background()
	a, _ := twoReplicas(t)
	st, rev, err := a.jobs.claim(ctx, jobOrg, syncjobs.KindEnable, "enable-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	j := &job{s: a, org: jobOrg, st: st, rev: rev}
	if err := a.jobs.update(ctx, jobOrg, func(s *syncjobs.Status) { s.DataValidation = true }); err != nil {
		t.Fatal(err)
	}
	j.st.EventsPublished = 7
	if err := j.save(ctx, true); err != nil {
		t.Fatalf("save after a settings change: %v", err)
	}
	got, _, _, err := a.jobs.get(ctx, jobOrg)
	if err != nil {
		t.Fatal(err)
	}
	if !got.DataValidation || got.EventsPublished != 7 || got.JobID != "enable-1" {
		t.Fatalf("stored %+v: want the switch kept and the job's progress saved", got)
	}
}

func TestSaveGivesUpToAnotherReplicasClaim(t *testing.T) {
	ctx := context.Background()
	a, b := twoReplicas(t)
	st, rev, err := a.jobs.claim(ctx, jobOrg, syncjobs.KindSweep, "sweep-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	j := &job{s: a, org: jobOrg, st: st, rev: rev}
	// Replica a's heartbeat went silent; b takes the stale job over.
	b.jobs.now = func() time.Time { return time.Now().Add(2 * staleAfter) }
	if _, _, err := b.jobs.claim(ctx, jobOrg, syncjobs.KindSweep, "sweep-1", time.Now()); err != nil {
		t.Fatalf("take-over of a stale job: %v", err)
	}
	if err := j.save(ctx, true); !errors.Is(err, errLostClaim) {
		t.Fatalf("save after another replica's claim: %v, want errLostClaim", err)
	}
	got, _, _, _ := a.jobs.get(ctx, jobOrg)
	if got.Owner != "host/1/b" {
		t.Fatalf("owner %q: the loser's save must not overwrite the new claim", got.Owner)
	}
}
