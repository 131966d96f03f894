package state

import (
	"context"
	"fmt"
	"testing"
)

// A listing with more edges than one batched direct get answers (the
// server's limit is 1024) is read in pages: every edge is found once.
func TestListingBeyondOneAnswer(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := context.Background()
	const org, account, n = "0f0f0f0f-0000-4000-8000-000000000000", "a1a1a1a1-0000-4000-8000-000000000000", 2500
	for i := range n {
		if _, err := s.index.Put(ctx, accountContactsKey(org, account)+"."+fmt.Sprintf("c-%05d", i), []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	// An edge of another account, under a prefix that shares its start.
	if _, err := s.index.Put(ctx, accountContactsKey(org, account+"x")+".other", []byte{1}); err != nil {
		t.Fatal(err)
	}
	refs, err := s.ContactsOfAccount(ctx, org, account)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != n {
		t.Fatalf("%d contacts listed, want %d", len(refs), n)
	}
	for i, r := range refs {
		if want := fmt.Sprintf("c-%05d", i); r.ID != want || r.Org != org {
			t.Fatalf("contact %d is %+v, want %s in %s", i, r, want, org)
		}
	}
	// Several prefixes at once, one of them large: each gets its own.
	both, err := s.edgesUnder(ctx, accountContactsKey(org, account), accountContactsKey(org, account+"x"))
	if err != nil {
		t.Fatal(err)
	}
	if len(both[accountContactsKey(org, account)]) != n || len(both[accountContactsKey(org, account+"x")]) != 1 {
		t.Fatalf("listed %d and %d, want %d and 1", len(both[accountContactsKey(org, account)]), len(both[accountContactsKey(org, account+"x")]), n)
	}
}
