package state

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// gatedPurges holds the first purge of one index key until released, as
// a slow handler would.
type gatedPurges struct {
	jetstream.Stream
	key     string
	once    sync.Once
	held    chan struct{}
	release chan struct{}
}

func gate(s *Store, key string) *gatedPurges {
	g := &gatedPurges{Stream: s.indexStream, key: key, held: make(chan struct{}), release: make(chan struct{})}
	s.indexStream = g
	return g
}

func (g *gatedPurges) Purge(ctx context.Context, opts ...jetstream.StreamPurgeOpt) error {
	var req jetstream.StreamPurgeRequest
	for _, o := range opts {
		_ = o(&req)
	}
	if req.Subject == "$KV."+bus.BucketIndex+"."+g.key {
		first := false
		g.once.Do(func() { first = true })
		if first {
			close(g.held)
			select {
			case <-g.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return g.Stream.Purge(ctx, opts...)
}

// interleave applies first, and once first's handler is held removing the
// gated edge, applies second in full; then lets first finish.
func interleave(t *testing.T, g *gatedPurges, first, second func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- first() }()
	select {
	case <-g.held:
	case err := <-done:
		t.Fatalf("the first change never removed %s (err %v)", g.key, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("the first change never removed %s", g.key)
	}
	if err := second(); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Two changes of one row applied at once (two replicas, or two workers):
// the first to apply is the last to reindex. A contact moving a1 → a2
// while it moves back a2 → a1 must stay listed under a1.
func TestStoreIndexKeepsEdgesOfConcurrentRowChanges(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	const id = "c1"
	move := func(v int, account string) func() error {
		return func() error {
			_, _, _, err := s.ApplyChange(ctx, forRow(update(v, cols{"parentcustomerid": ref("account", account)}), org, "contact", id))
			return err
		}
	}
	if err := move(1, "a1")(); err != nil {
		t.Fatal(err)
	}
	g := gate(s, accountContactsKey(org, "a1")+"."+id)
	interleave(t, g, move(2, "a2"), move(3, "a1"))

	row, err := s.Row(ctx, org, "contact", id)
	if err != nil || row.Contact(s.cols).AccountID != "a1" {
		t.Fatalf("row = %+v, %v; want on a1", row, err)
	}
	refs, err := s.ContactsOfAccount(ctx, org, "a1")
	if err != nil || !slices.Contains(refs, ContactRef{Org: org, ID: id}) {
		t.Errorf("ContactsOfAccount(a1) = %v, %v: the contact on a1 is missing", refs, err)
	}
	// An edge left over under a2 is harmless: readers check the row.
}

// The same for a member whose email changes and changes back.
func TestStoreIndexKeepsEdgesOfConcurrentProfiles(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	h1, h2 := eventsv1.HashEmail("ada@contoso.com"), eventsv1.HashEmail("ada@fabrikam.com")
	observe := func(n int, hash string) func() error {
		return func() error {
			_, _, _, err := s.ApplyProfile(ctx, profile(n, []string{hash}, pos("Contoso", 2018, 0, true)))
			return err
		}
	}
	if err := observe(1, h1)(); err != nil {
		t.Fatal(err)
	}
	g := gate(s, memberEmailKey(h1)+"."+MemberKey(memberID))
	interleave(t, g, observe(2, h2), observe(3, h1))

	if got := membersByEmail(t, s, h1); len(got) != 1 || got[0].ObservedAt != timestamppb.New(at(3)).AsTime().UnixMilli() {
		t.Errorf("MembersByEmail(h1) = %+v: the member, as observed last, is missing", got)
	}
	if got := membersByEmail(t, s, h2); len(got) != 0 {
		t.Errorf("MembersByEmail(h2) = %+v, want none (a left-over edge must not show)", got)
	}
}
