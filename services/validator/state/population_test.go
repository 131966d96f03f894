package state

import (
	"context"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// The populations come from memory: a replica reads its own moves at
// once and another replica's once its read is older than ScopeLease.
func TestPopulationsFollowOtherReplicasWithinTheLease(t *testing.T) {
	t.Parallel()
	a, js := openStore(t)
	b, err := Open(t.Context(), js, Columns{Flag: flagCol})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	b.names.pop.now = func() time.Time { return clock }

	mustApply(t, a, named("c-1", 1, "Ada", "Byron", "a1"))
	wantStats(t, "replica b, first read", statsOf(t, b, "c-1"), decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Population: 1})

	// Replica a adds two contacts: a sees them at once, b within its lease
	// still has the population it read (the name's own count is read
	// every time).
	mustApply(t, a, named("c-2", 1, "Ada", "Byron", "a1"))
	mustApply(t, a, named("c-3", 1, "Grace", "Hopper", "a2"))
	wantStats(t, "replica a, its own moves", statsOf(t, a, "c-1"), decide.NameStats{Contacts: 2, ContactsOnAccount: 2, Population: 3})
	wantStats(t, "replica b, within the lease", statsOf(t, b, "c-1"), decide.NameStats{Contacts: 2, ContactsOnAccount: 2, Population: 1})

	clock = clock.Add(ScopeLease)
	wantStats(t, "replica b, after the lease", statsOf(t, b, "c-1"), decide.NameStats{Contacts: 2, ContactsOnAccount: 2, Population: 3})

	// A shard b moves itself is read at once, and so is everything a
	// moved before it.
	mustApply(t, a, named("c-4", 1, "Alan", "Turing", "a2"))
	mustApply(t, b, forRow(del(2), org, "contact", "c-3"))
	wantStats(t, "replica b, its own move", statsOf(t, b, "c-1"), decide.NameStats{Contacts: 2, ContactsOnAccount: 2, Population: 3})
}

// A read that fails answers the error and leaves the next read to try
// again, rather than keeping nothing as fresh.
func TestPopulationsReadAgainAfterAFailure(t *testing.T) {
	s, _ := openStore(t)
	mustApply(t, s, named("c-1", 1, "Ada", "Byron", "a1"))
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.names.pop.of(done, org); err == nil {
		t.Fatal("a read on an ended context succeeded")
	}
	wantStats(t, "after the failure", statsOf(t, s, "c-1"), decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Population: 1})
}
