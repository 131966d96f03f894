package state

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const scopeUser = "5e5e5e5e-0000-4000-8000-000000000001"

func syncUser(enabled bool, changed int64) *eventsv1.SyncUserChange {
	return &eventsv1.SyncUserChange{OrganizationId: org, UserId: scopeUser, Enabled: enabled, ChangedAt: timestamppb.New(time.Unix(changed, 0))}
}

// A read past the revision an admin change was stored at sees the change,
// whatever the watch had delivered when it began; the keys it answered
// with tell, after a later change, that they changed.
func TestScopeCacheReadsPastFloor(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	for i := range 5 {
		_, at, err := s.ApplySyncUser(ctx, syncUser(i%2 == 0, int64(10+i)))
		if err != nil {
			t.Fatal(err)
		}
		scope, err := s.Scope().Read(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		if !scope.At.Covers(at) {
			t.Errorf("change %d: read at %v, want past %v", i, scope.At, at)
		}
		ok, keys, err := scope.IsSyncUser(org, scopeUser)
		if err != nil || ok != (i%2 == 0) {
			t.Errorf("change %d: IsSyncUser = %v, %v; want %v", i, ok, err, i%2 == 0)
		}
		if len(keys) == 0 || keys[0].Rev != at[SourceSyncUsers] {
			t.Errorf("change %d: keys %v, want the sync user at revision %d", i, keys, at[SourceSyncUsers])
		}
	}
	// The system user row, disabled in Dynamics, takes the user out.
	_, at, err := s.ApplySyncUser(ctx, syncUser(true, 100))
	if err != nil {
		t.Fatal(err)
	}
	scope, err := s.Scope().Read(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	_, before, _ := scope.IsSyncUser(org, scopeUser)
	if _, _, _, err := s.ApplyChange(ctx, &eventsv1.CrmChange{OrganizationId: org, Table: "systemuser", RowId: scopeUser,
		Operation: eventsv1.Operation_OPERATION_UPDATE, RowModifiedAt: timestamppb.New(time.Unix(5, 0)),
		Columns: map[string]*eventsv1.Value{"isdisabled": {Kind: &eventsv1.Value_Boolean{Boolean: true}}}}); err != nil {
		t.Fatal(err)
	}
	now, err := s.Scope().Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scope, err = s.Scope().Read(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := scope.IsSyncUser(org, scopeUser); ok {
		t.Error("a sync user disabled in Dynamics is still in scope")
	}
	changed := false
	for _, k := range before {
		changed = changed || scope.Changed(k)
	}
	if !changed {
		t.Errorf("keys %v read before the system user changed: none changed", before)
	}
}

// A read never answers from a cache that may miss a write older than the
// lease: past it, a probe asks the buckets first. A second store's cache
// (another replica) reads a floor the first one's decision carried.
func TestScopeCacheLeaseAndOtherReplica(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	ctx := ctxT(t)
	clock := time.Now()
	s.scope.mu.Lock()
	s.scope.now = func() time.Time { return clock }
	s.scope.mu.Unlock()
	if _, _, _, err := s.ApplySettings(ctx, &eventsv1.OrgSettingsChange{OrganizationId: org, ConfidenceThreshold: 0.9,
		ChangedAt: timestamppb.New(time.Unix(10, 0))}); err != nil {
		t.Fatal(err)
	}
	scope, err := s.Scope().Read(ctx, Floor{})
	if err != nil {
		t.Fatal(err)
	}
	verified := s.scope.verified
	if got, _, _ := scope.Settings(org); got.Threshold != 0.9 {
		t.Errorf("settings %+v, want the threshold just stored (the read probes first)", got)
	}
	// Within the lease: no probe.
	clock = clock.Add(ScopeLease / 2)
	if _, err := s.Scope().Read(ctx, Floor{}); err != nil {
		t.Fatal(err)
	}
	if s.scope.verified != verified {
		t.Error("a read within the lease probed")
	}
	// Past it: a probe, sent at the read.
	clock = clock.Add(ScopeLease)
	if _, err := s.Scope().Read(ctx, Floor{}); err != nil {
		t.Fatal(err)
	}
	if !s.scope.verified.Equal(clock) {
		t.Errorf("verified at %v, want the read's time %v", s.scope.verified, clock)
	}

	other, err := Open(ctx, js, Columns{Flag: flagCol})
	if err != nil {
		t.Fatal(err)
	}
	floor := scope.At
	floor[SourceSettings] += 1000 // beyond any position: only a probe can say it is covered
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	o, err := other.Scope().Read(rctx, floor)
	if err != nil {
		t.Fatalf("another replica reading a floor ahead of its watch: %v", err)
	}
	if got, _, _ := o.Settings(org); got.Threshold != 0.9 {
		t.Errorf("another replica's settings %+v", got)
	}
}

// The watches live as long as the connection, not the context Open was
// given (a service's start, a test's setup).
func TestScopeCacheOutlivesOpenContext(t *testing.T) {
	t.Parallel()
	js, _ := testkit.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Open(ctx, js, Columns{Flag: flagCol})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	ctx = ctxT(t)
	_, _, at, err := s.ApplySettings(ctx, &eventsv1.OrgSettingsChange{OrganizationId: org, DataValidation: true,
		ChangedAt: timestamppb.New(time.Unix(10, 0))})
	if err != nil {
		t.Fatal(err)
	}
	scope, err := s.Scope().Read(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := scope.Settings(org); got != (orgs.Settings{DataValidation: true, ChangedAt: 10000}) {
		t.Errorf("settings %+v after the opening context ended", got)
	}
}
