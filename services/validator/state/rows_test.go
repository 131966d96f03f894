package state

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
)

const flagCol = "nac_orgchangestatus"

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// at is the version (row modifiedon) n seconds after t0.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func str(s string) *eventsv1.Value { return &eventsv1.Value{Kind: &eventsv1.Value_String_{String_: s}} }
func null() *eventsv1.Value        { return &eventsv1.Value{Kind: &eventsv1.Value_Null{Null: true}} }
func choice(n int32) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_Choice{Choice: n}}
}
func ref(table, id string) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_Reference{Reference: &eventsv1.EntityReference{Table: table, Id: id}}}
}

type cols = map[string]*eventsv1.Value

func contactChange(op eventsv1.Operation, version int, c cols) *eventsv1.CrmChange {
	return &eventsv1.CrmChange{
		OrganizationId: "org", Table: "contact", RowId: "c1", Operation: op, Columns: c,
		RowModifiedAt: timestamppb.New(at(version)),
	}
}

func create(v int, c cols) *eventsv1.CrmChange {
	return contactChange(eventsv1.Operation_OPERATION_CREATE, v, c)
}
func update(v int, c cols) *eventsv1.CrmChange {
	return contactChange(eventsv1.Operation_OPERATION_UPDATE, v, c)
}
func del(v int) *eventsv1.CrmChange {
	return contactChange(eventsv1.Operation_OPERATION_DELETE, v, nil)
}

func apply(t *testing.T, row *Row, ch *eventsv1.CrmChange) (*Row, bool) {
	t.Helper()
	return Apply(row, ch, flagCol)
}

func wantCell(t *testing.T, r *Row, col, v string, version int) {
	t.Helper()
	got, ok := r.Cols[col]
	if !ok {
		t.Errorf("column %s missing, want %q", col, v)
		return
	}
	if want := (Cell{V: v, At: at(version).UnixMilli()}); got != want {
		t.Errorf("column %s = %+v, want %+v", col, got, want)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	ch := &eventsv1.CrmChange{ReceivedAt: timestamppb.New(at(1))}
	if got := Version(ch); got != at(1).UnixMilli() {
		t.Errorf("received only: %d", got)
	}
	ch.OccurredAt = timestamppb.New(at(2))
	if got := Version(ch); got != at(2).UnixMilli() {
		t.Errorf("occurred: %d", got)
	}
	ch.RowModifiedAt = timestamppb.New(at(3))
	if got := Version(ch); got != at(3).UnixMilli() {
		t.Errorf("modified: %d", got)
	}
}

func TestApplyCreate(t *testing.T) {
	t.Parallel()
	r, changed := apply(t, nil, create(1, cols{
		"firstname": str("Ada"), "lastname": str("Lovelace"), "parentcustomerid": ref("account", "a1"),
		"statecode": choice(0), flagCol: choice(2),
		"telephone1": str("+44 20 0000 0000"), // not kept
	}))
	if !changed {
		t.Fatal("create reported no change")
	}
	if r.Table != "contact" || r.ID != "c1" || r.Deleted {
		t.Errorf("row = %+v", r)
	}
	wantCell(t, r, "firstname", "Ada", 1)
	wantCell(t, r, "lastname", "Lovelace", 1)
	wantCell(t, r, "parentcustomerid", "account:a1", 1)
	wantCell(t, r, "statecode", "0", 1)
	wantCell(t, r, flagCol, "2", 1)
	if _, ok := r.Cols["telephone1"]; ok {
		t.Error("a column the validator does not use was kept")
	}
	// Without the extra column, the flag is not kept either.
	r2, _ := Apply(nil, create(1, cols{flagCol: choice(2)}))
	if _, ok := r2.Cols[flagCol]; ok {
		t.Error("flag column kept without being asked for")
	}
}

func TestApplyUpdateMergesPresentColumns(t *testing.T) {
	t.Parallel()
	r, _ := apply(t, nil, create(1, cols{"firstname": str("Ada"), "lastname": str("Byron")}))
	r, changed := apply(t, r, update(2, cols{"lastname": str("Lovelace"), "emailaddress1": str("ada@contoso.com")}))
	if !changed {
		t.Fatal("update reported no change")
	}
	wantCell(t, r, "firstname", "Ada", 1)
	wantCell(t, r, "lastname", "Lovelace", 2)
	wantCell(t, r, "emailaddress1", "ada@contoso.com", 2)
	// A null clears the value.
	r, changed = apply(t, r, update(3, cols{"emailaddress1": null()}))
	if !changed {
		t.Fatal("clearing a column reported no change")
	}
	wantCell(t, r, "emailaddress1", "", 3)
}

func TestApplyDoesNotMutateItsInput(t *testing.T) {
	t.Parallel()
	r1, _ := apply(t, nil, create(1, cols{"firstname": str("Ada")}))
	snapshot, _ := json.Marshal(r1)
	_, _ = apply(t, r1, update(2, cols{"firstname": str("Augusta")}))
	_, _ = apply(t, r1, del(3))
	if after, _ := json.Marshal(r1); string(after) != string(snapshot) {
		t.Errorf("Apply changed the row it was given: %s, was %s", after, snapshot)
	}
}

func TestApplyOlderChangeKeepsNewerColumns(t *testing.T) {
	t.Parallel()
	r, _ := apply(t, nil, update(5, cols{"firstname": str("Augusta"), "lastname": str("King")}))
	// An older change arriving late: firstname is older than what the row
	// holds; emailaddress1 was never set, so it is taken.
	r, changed := apply(t, r, update(3, cols{"firstname": str("Ada"), "emailaddress1": str("ada@contoso.com")}))
	if !changed {
		t.Error("a late change that sets a new column reported no change")
	}
	wantCell(t, r, "firstname", "Augusta", 5)
	wantCell(t, r, "lastname", "King", 5)
	wantCell(t, r, "emailaddress1", "ada@contoso.com", 3)

	// Entirely older: nothing changes.
	r2, changed := apply(t, r, update(4, cols{"firstname": str("Ada"), "lastname": str("Byron")}))
	if changed {
		t.Error("an entirely older change reported a change")
	}
	if !reflect.DeepEqual(r2, r) {
		t.Errorf("an entirely older change altered the row: %+v, want %+v", r2, r)
	}
}

func TestApplyDuplicates(t *testing.T) {
	t.Parallel()
	changes := []*eventsv1.CrmChange{
		create(1, cols{"firstname": str("Ada")}),
		update(2, cols{"lastname": str("Lovelace")}),
		del(3),
	}
	var r *Row
	for _, ch := range changes {
		var changed bool
		r, changed = apply(t, r, ch)
		if !changed {
			t.Fatalf("first application of %v reported no change", ch.GetOperation())
		}
		again, changed := apply(t, r, ch)
		if changed {
			t.Errorf("duplicate %v reported a change", ch.GetOperation())
		}
		if !reflect.DeepEqual(again, r) {
			t.Errorf("duplicate %v altered the row: %+v, want %+v", ch.GetOperation(), again, r)
		}
	}
}

func TestApplyDeleteThenOlderUpdateIsIgnored(t *testing.T) {
	t.Parallel()
	r, _ := apply(t, nil, create(1, cols{"firstname": str("Ada")}))
	r, changed := apply(t, r, del(3))
	if !changed || !r.Deleted {
		t.Fatalf("delete: changed=%v row=%+v", changed, r)
	}
	if r.DeletedAt != at(3).UnixMilli() {
		t.Errorf("DeletedAt = %d, want %d", r.DeletedAt, at(3).UnixMilli())
	}
	for _, ch := range []*eventsv1.CrmChange{
		update(2, cols{"lastname": str("Lovelace")}),
		update(3, cols{"lastname": str("Lovelace")}), // same version as the delete: the delete wins
		del(2),
	} {
		r2, changed := apply(t, r, ch)
		if changed || !r2.Deleted {
			t.Errorf("%v at %s after the delete: changed=%v deleted=%v", ch.GetOperation(), ch.GetRowModifiedAt().AsTime(), changed, r2.Deleted)
		}
		if _, ok := r2.Cols["lastname"]; ok {
			t.Errorf("%v from before the delete set a column", ch.GetOperation())
		}
	}
	if c := r.Contact(Columns{Flag: flagCol}); c.Active {
		t.Error("a deleted contact is active")
	}
}

func TestApplyNewerCreateAfterDeleteRestores(t *testing.T) {
	t.Parallel()
	r, _ := apply(t, nil, create(1, cols{"firstname": str("Ada")}))
	r, _ = apply(t, r, del(3))
	r, changed := apply(t, r, create(4, cols{"firstname": str("Augusta"), "lastname": str("King")}))
	if !changed || r.Deleted {
		t.Fatalf("create after delete: changed=%v row=%+v", changed, r)
	}
	wantCell(t, r, "firstname", "Augusta", 4)
	wantCell(t, r, "lastname", "King", 4)
	if !r.Contact(Columns{Flag: flagCol}).Active {
		t.Error("restored contact is not active")
	}
	// A change from before the delete still loses after the restore.
	r2, changed := apply(t, r, update(2, cols{"emailaddress1": str("old@contoso.com")}))
	if changed || !reflect.DeepEqual(r2, r) {
		t.Errorf("a change from before the delete applied after the restore: changed=%v row=%+v", changed, r2)
	}
	// And so does a delete older than the restore.
	r3, changed := apply(t, r, del(2))
	if changed || r3.Deleted {
		t.Errorf("a delete older than the restore applied: changed=%v row=%+v", changed, r3)
	}
}

func TestApplyDeleteOfUnknownRow(t *testing.T) {
	t.Parallel()
	r, changed := apply(t, nil, del(2))
	if !changed || !r.Deleted || r.ID != "c1" || r.Table != "contact" {
		t.Fatalf("delete of an unknown row: changed=%v row=%+v", changed, r)
	}
	r, changed = apply(t, r, create(1, cols{"firstname": str("Ada")}))
	if changed || !r.Deleted || len(r.Cols) != 0 {
		t.Errorf("the create of a deleted row, arriving late, applied: changed=%v row=%+v", changed, r)
	}
}

func TestContact(t *testing.T) {
	t.Parallel()
	r, _ := apply(t, nil, create(1, cols{
		"firstname": str("Ada"), "lastname": str("Lovelace"),
		"parentcustomerid": ref("account", "a1"), "statecode": choice(0), flagCol: choice(1),
		"emailaddress1": str(" Ada@Contoso.com "), "emailaddress2": str("ada@contoso.com"), "emailaddress3": str("ada@fabrikam.com"),
	}))
	c := r.Contact(Columns{Flag: flagCol})
	want := []string{eventsv1.HashEmail("ada@contoso.com"), eventsv1.HashEmail("ada@fabrikam.com")}
	slices.Sort(want)
	if !reflect.DeepEqual(c.EmailHashes, want) {
		t.Errorf("EmailHashes = %v, want %v (hashed, sorted, without duplicates)", c.EmailHashes, want)
	}
	if c.ID != "c1" || c.FirstName != "Ada" || c.LastName != "Lovelace" || c.AccountID != "a1" || !c.Active || c.Flag != 1 {
		t.Errorf("Contact = %+v", c)
	}
	if c.EmailHashes[0] == "ada@contoso.com" || len(c.EmailHashes[0]) != 64 {
		t.Errorf("email not hashed: %q", c.EmailHashes[0])
	}

	// A parent contact is not an account.
	r, _ = apply(t, r, update(2, cols{"parentcustomerid": ref("contact", "c9")}))
	if got := r.Contact(Columns{Flag: flagCol}).AccountID; got != "" {
		t.Errorf("AccountID = %q for a contact parentcustomerid, want empty", got)
	}
	r, _ = apply(t, r, update(3, cols{"parentcustomerid": null()}))
	if got := r.Contact(Columns{Flag: flagCol}).AccountID; got != "" {
		t.Errorf("AccountID = %q for a null parentcustomerid, want empty", got)
	}

	// statecode 1 is inactive; no statecode at all is active.
	r, _ = apply(t, r, update(4, cols{"statecode": choice(1)}))
	if r.Contact(Columns{Flag: flagCol}).Active {
		t.Error("statecode 1 is active")
	}
	bare, _ := apply(t, nil, create(1, cols{"firstname": str("Ada")}))
	bc := bare.Contact(Columns{Flag: flagCol})
	if !bc.Active || bc.Flag != 0 || bc.EmailHashes != nil || bc.AccountID != "" {
		t.Errorf("bare contact = %+v", bc)
	}
	// The flag is read from the column asked for.
	if got := r.Contact(Columns{Flag: "msdyn_orgchangestatus"}).Flag; got != 0 {
		t.Errorf("Flag of another column = %d", got)
	}
}

// What the name match compares beyond the name: when the contact was
// created, its email domains and LinkedIn's own status column.
func TestContactMatchFields(t *testing.T) {
	t.Parallel()
	created := &eventsv1.Value{Kind: &eventsv1.Value_DateTime{DateTime: timestamppb.New(time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC))}}
	r, _ := Apply(nil, create(1, cols{
		"firstname": str("Ada"), "createdon": created, "msdyn_orgchangestatus": choice(1),
		"emailaddress1": str("Ada@Mail.Contoso.co.uk"), "emailaddress2": str("ada@contoso.co.uk"), "emailaddress3": str("ada@gmail.com"),
	}), flagCol, "msdyn_orgchangestatus")
	c := r.Contact(Columns{Flag: flagCol, LinkedInStatus: "msdyn_orgchangestatus"})
	if !c.CreatedOn.Equal(time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)) {
		t.Errorf("CreatedOn = %v", c.CreatedOn)
	}
	if want := []string{"contoso.co.uk", "gmail.com"}; !reflect.DeepEqual(c.EmailDomains, want) {
		t.Errorf("EmailDomains = %v, want %v", c.EmailDomains, want)
	}
	if c.LinkedInStatus != 1 {
		t.Errorf("LinkedInStatus = %d, want 1", c.LinkedInStatus)
	}
	if got := r.Contact(Columns{Flag: flagCol}).LinkedInStatus; got != 0 {
		t.Errorf("LinkedInStatus without the column configured = %d, want 0", got)
	}
}

func TestAccount(t *testing.T) {
	t.Parallel()
	r, _ := Apply(nil, &eventsv1.CrmChange{
		Table: "account", RowId: "a1", Operation: eventsv1.Operation_OPERATION_CREATE,
		RowModifiedAt: timestamppb.New(at(1)),
		Columns:       cols{"name": str("Contoso Ltd"), "websiteurl": str("https://contoso.com"), "fullname": str("x")},
	})
	if a := r.Account(Columns{}); a.ID != "a1" || a.Name != "Contoso Ltd" || a.Website != "https://contoso.com" {
		t.Errorf("Account = %+v", a)
	}
	if _, ok := r.Cols["fullname"]; ok {
		t.Error("a contact column was kept on an account")
	}
	if !Tracked("account") || !Tracked("contact") || !Tracked("opportunity") || !Tracked("systemuser") || Tracked("lead") {
		t.Error("Tracked")
	}
}

// TestApplyOrderIndependent is a property test: whatever order changes
// arrive in, and however often each arrives, the row ends up as when they
// arrive once each, in version order.
func TestApplyOrderIndependent(t *testing.T) {
	t.Parallel()
	sets := map[string][]*eventsv1.CrmChange{
		"updates only": {
			create(1, cols{"firstname": str("Ada"), "lastname": str("Byron"), "emailaddress1": str("ada@contoso.com"),
				"parentcustomerid": ref("account", "a1"), "statecode": choice(0)}),
			update(2, cols{"emailaddress1": str("ada@fabrikam.com")}),
			update(3, cols{"lastname": str("Lovelace"), "parentcustomerid": ref("account", "a2")}),
			update(3, cols{"ownerid": ref("systemuser", "u1")}),
			update(4, cols{flagCol: choice(1)}),
			update(5, cols{"emailaddress1": str("ada@fabrikam.com")}), // same value, newer version
			update(6, cols{"emailaddress2": null(), flagCol: choice(0)}),
			update(6, cols{flagCol: choice(2)}), // same version, another value
			update(7, cols{"statecode": choice(1), "firstname": str("Augusta Ada")}),
		},
		"delete last": {
			create(1, cols{"firstname": str("Ada"), "emailaddress1": str("ada@contoso.com"), "parentcustomerid": ref("account", "a1")}),
			update(2, cols{"lastname": str("Lovelace")}),
			update(3, cols{"emailaddress1": str("ada@fabrikam.com")}),
			update(4, cols{flagCol: choice(1)}),
			update(5, cols{"parentcustomerid": ref("account", "a2")}),
			update(6, cols{"statecode": choice(0)}),
			update(7, cols{"firstname": str("Augusta")}),
			del(8),
		},
		"delete then restore": {
			create(1, cols{"firstname": str("Ada"), "lastname": str("Byron"), "emailaddress1": str("ada@contoso.com"),
				"parentcustomerid": ref("account", "a1")}),
			update(2, cols{"lastname": str("Lovelace"), flagCol: choice(1)}),
			update(3, cols{"emailaddress2": str("ada@fabrikam.com")}),
			del(4),
			update(4, cols{"ownerid": ref("systemuser", "u1")}), // same version as the delete
			create(5, cols{"firstname": str("Ada"), "emailaddress1": str("ada@fabrikam.com"), "parentcustomerid": ref("account", "a2")}),
			update(6, cols{"lastname": str("King")}),
			update(7, cols{"statecode": choice(0), flagCol: choice(2)}),
		},
	}
	for name, changes := range sets {
		t.Run(name, func(t *testing.T) {
			inOrder := slices.Clone(changes)
			slices.SortStableFunc(inOrder, func(a, b *eventsv1.CrmChange) int {
				return int(Version(a) - Version(b))
			})
			var want *Row
			for _, ch := range inOrder {
				want, _ = Apply(want, ch, flagCol)
			}
			seed := uint64(time.Now().UnixNano())
			rng := rand.New(rand.NewPCG(seed, 42))
			for i := range 500 {
				var delivery []*eventsv1.CrmChange
				for _, ch := range changes {
					for range 1 + rng.IntN(3) {
						delivery = append(delivery, ch)
					}
				}
				rng.Shuffle(len(delivery), func(i, j int) { delivery[i], delivery[j] = delivery[j], delivery[i] })
				var got *Row
				for _, ch := range delivery {
					got, _ = Apply(got, ch, flagCol)
				}
				if !reflect.DeepEqual(got, want) {
					var order []string
					for _, ch := range delivery {
						order = append(order, ch.GetOperation().String()[10:]+"@"+ch.GetRowModifiedAt().AsTime().Format("05"))
					}
					gj, _ := json.Marshal(got)
					wj, _ := json.Marshal(want)
					t.Fatalf("seed %d, run %d, order %v:\n got %s\nwant %s", seed, i, order, gj, wj)
				}
			}
		})
	}
}

// One change dated in the far future (modifiedon 9999-12-31) must not
// freeze the row: its version is bounded by when it was received, and a
// real change made after that bound wins, whatever the order of arrival.
func TestApplyFarFutureVersionDoesNotFreezeTheRow(t *testing.T) {
	t.Parallel()
	bogus := contactChange(eventsv1.Operation_OPERATION_UPDATE, 0, cols{"jobtitle": str("Forged")})
	bogus.RowModifiedAt = timestamppb.New(time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC))
	bogus.ReceivedAt = timestamppb.New(at(10))
	if got, want := Version(bogus), at(10).Add(MaxClockSkew).UnixMilli(); got != want {
		t.Errorf("version of the far-future change = %d, want received + skew %d", got, want)
	}
	later := at(10).Add(MaxClockSkew + time.Second)
	real := contactChange(eventsv1.Operation_OPERATION_UPDATE, 0, cols{"jobtitle": str("Engineer")})
	real.RowModifiedAt, real.ReceivedAt = timestamppb.New(later), timestamppb.New(later)
	for name, order := range map[string][]*eventsv1.CrmChange{"bogus first": {bogus, real}, "real first": {real, bogus}} {
		var row *Row
		for _, ch := range order {
			row, _ = Apply(row, ch)
		}
		if got := row.Cols["jobtitle"].V; got != "Engineer" {
			t.Errorf("%s: jobtitle = %q, want the later real change's", name, got)
		}
	}
	// Within the skew a clock ahead of ours still orders as it says.
	ahead := contactChange(eventsv1.Operation_OPERATION_UPDATE, 0, cols{"jobtitle": str("Ahead")})
	ahead.RowModifiedAt, ahead.ReceivedAt = timestamppb.New(at(70)), timestamppb.New(at(10))
	if got := Version(ahead); got != at(70).UnixMilli() {
		t.Errorf("a version within the skew = %d, want it kept", got)
	}
}
