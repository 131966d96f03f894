package state

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
)

// What a group read and what Changed says of it after writes of every
// kind: an update, a delete, a key created under a listed prefix, a key
// created where a read found nothing, and none.
func TestChangedSinceGroupReads(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	const (
		c1, c2, c3 = "7d8c4a0e-0000-4000-8000-000000000001", "7d8c4a0e-0000-4000-8000-000000000002", "7d8c4a0e-0000-4000-8000-000000000003"
		a1         = "a1b2c3d4-0000-4000-8000-000000000001"
	)
	contact := func(id, first string, version int64) *eventsv1.CrmChange {
		return &eventsv1.CrmChange{OrganizationId: org, Table: "contact", RowId: id, Operation: eventsv1.Operation_OPERATION_UPDATE,
			RowModifiedAt: timestamppb.New(time.Unix(version, 0)),
			Columns: map[string]*eventsv1.Value{"firstname": str(first), "lastname": str("Lovelace"),
				"parentcustomerid": ref("account", a1), "emailaddress1": str(first + "@contoso.com")}}
	}
	for _, id := range []string{c1, c2} {
		if _, _, _, err := s.ApplyChange(ctx, contact(id, "Ada", 1)); err != nil {
			t.Fatal(err)
		}
	}
	refs := []RowRef{{Org: org, ID: c1}, {Org: org, ID: c2}, {Org: org, ID: c3}}
	rows, rowDeps, err := s.RowsOf(ctx, "contact", refs)
	if err != nil {
		t.Fatal(err)
	}
	if rows[refs[0]] == nil || rows[refs[1]] == nil || rows[refs[2]] != nil {
		t.Fatalf("rows %v, want the two stored", rows)
	}
	if rowDeps[refs[0]].Rev == 0 || rowDeps[refs[2]].Rev != 0 {
		t.Errorf("revisions %d and %d, want one and none", rowDeps[refs[0]].Rev, rowDeps[refs[2]].Rev)
	}
	accountPrefix := accountContactsKey(org, a1)
	edges, edgeDeps, err := s.EdgesOf(ctx, []string{accountPrefix, accountContactsKey(org, "other")})
	if err != nil {
		t.Fatal(err)
	}
	if got := edges[accountPrefix]; len(got) != 2 {
		t.Fatalf("edges %v under the account, want c1 and c2", got)
	}
	deps := []Dep{rowDeps[refs[0]], rowDeps[refs[1]], rowDeps[refs[2]], edgeDeps[accountPrefix], edgeDeps[accountContactsKey(org, "other")]}
	check := func(what string, want ...bool) {
		t.Helper()
		got, err := s.Changed(ctx, deps)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: dep %d (%s) changed=%v, want %v", what, i, deps[i].Filter, got[i], want[i])
			}
		}
	}
	check("nothing written", false, false, false, false, false)

	// c1 gets a newer version of a column: its row changed, not the index.
	if _, _, _, err := s.ApplyChange(ctx, contact(c1, "Ada", 2)); err != nil {
		t.Fatal(err)
	}
	check("c1 stored again", true, false, false, false, false)

	// c3 comes: where nothing was, a row, and an edge under the account.
	if _, _, _, err := s.ApplyChange(ctx, contact(c3, "Ada", 3)); err != nil {
		t.Fatal(err)
	}
	check("c3 created", true, false, true, true, false)

	// c2 is deleted (a row tombstone), its edge under the account purged.
	del := contact(c2, "Ada", 4)
	del.Operation, del.Columns = eventsv1.Operation_OPERATION_DELETE, nil
	if _, _, _, err := s.ApplyChange(ctx, del); err != nil {
		t.Fatal(err)
	}
	check("c2 deleted", true, true, true, true, false)
}

func TestFloorText(t *testing.T) {
	t.Parallel()
	for _, f := range []Floor{{}, {1, 2, 3}, {18446744073709551615, 0, 7}} {
		if got := ParseFloor(f.String()); got != f {
			t.Errorf("ParseFloor(%q) = %v, want %v", f.String(), got, f)
		}
	}
	for _, s := range []string{"", "1:2", "1:2:x", "1:2:3:4", "-1:0:0"} {
		if got := ParseFloor(s); got != (Floor{}) {
			t.Errorf("ParseFloor(%q) = %v, want the zero floor", s, got)
		}
	}
	if !(Floor{2, 2, 2}).Covers(Floor{1, 2, 0}) || (Floor{2, 2, 2}).Covers(Floor{0, 3, 0}) {
		t.Error("Covers")
	}
	if got := (Floor{1, 5, 0}).Max(Floor{3, 2, 0}); got != (Floor{3, 5, 0}) {
		t.Errorf("Max = %v", got)
	}
}
