package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

const (
	sellerA = "aaaaaaaa-0000-4000-8000-00000000000a"
	sellerB = "bbbbbbbb-0000-4000-8000-00000000000b"
)

// create POSTs a row as caller (MSCRMCallerID) and returns its id.
func (e *env) create(t *testing.T, set, caller, body string) string {
	t.Helper()
	var cols map[string]any
	if err := json.Unmarshal([]byte(body), &cols); err != nil {
		t.Fatal(err)
	}
	res, err := dataverse.Set(set)
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.client.Create(context.Background(), res, cols, &dataverse.RequestOptions{CallerID: caller})
	if err != nil {
		t.Fatalf("create %s %s: %v", set, body, err)
	}
	return id
}

func idOf(set string) string {
	if set == "opportunities" {
		return "opportunityid"
	}
	return set[:len(set)-1] + "id"
}

// viewRows executes view id as caller and returns the ids it lists.
func (e *env) viewRows(t *testing.T, set, id, caller string) []string {
	t.Helper()
	st, b := e.webAPI(t, http.MethodGet, set+"?savedQuery="+id, "", caller)
	if st != http.StatusOK {
		t.Fatalf("view %s as %s: %d %s", id, caller, st, b)
	}
	var ids []string
	for _, r := range decode(t, b)["value"].([]any) {
		ids = append(ids, r.(map[string]any)[idOf(set)].(string))
	}
	slices.Sort(ids)
	return ids
}

func TestViewsReturnExactlyTheFlaggedRows(t *testing.T) {
	e := newEnv(t)
	e.provision(t, Apply)
	e.standin.Seed("systemusers", sellerA, map[string]any{"fullname": "Seller A", "isdisabled": false})
	e.standin.Seed("systemusers", sellerB, map[string]any{"fullname": "Seller B", "isdisabled": false})
	acct := e.create(t, "accounts", sellerA, `{"name":"Contoso Ltd"}`)
	contact := func(owner string, flag any, state int) string {
		id := e.create(t, "contacts", owner, fmt.Sprintf(`{"fullname":"c","parentcustomerid_account@odata.bind":"/accounts(%s)"}`, acct))
		body := fmt.Sprintf(`{"nac_orgchangestatus":%v}`, flag)
		if state != 0 {
			body = fmt.Sprintf(`{"nac_orgchangestatus":%v,"statecode":%d,"statuscode":2}`, flag, state)
		}
		if st, b := e.webAPI(t, http.MethodPatch, "contacts("+id+")", body, owner); st != 204 {
			t.Fatalf("patch contact: %d %s", st, b)
		}
		return id
	}
	c1 := contact(sellerA, 1, 0)
	c2 := contact(sellerB, 1, 0)
	c3 := contact(sellerA, 0, 0)
	contact(sellerA, 1, 1)      // inactive
	contact(sellerB, 2, 0)      // Ignore
	contact(sellerA, "null", 0) // never decided

	opp := func(owner, links string, state int) string {
		id := e.create(t, "opportunities", owner, `{"name":"o"`+links+`}`)
		if state != 0 {
			if st, b := e.webAPI(t, http.MethodPatch, "opportunities("+id+")", `{"statecode":1,"statuscode":3}`, owner); st != 204 {
				t.Fatalf("close opportunity: %d %s", st, b)
			}
		}
		return id
	}
	pc := func(id string) string { return `,"parentcontactid@odata.bind":"/contacts(` + id + `)"` }
	cc := func(id string) string { return `,"customerid_contact@odata.bind":"/contacts(` + id + `)"` }
	ca := `,"customerid_account@odata.bind":"/accounts(` + acct + `)"`
	o1 := opp(sellerA, pc(c1), 0)
	o2 := opp(sellerB, cc(c2), 0)
	opp(sellerA, pc(c3)+ca, 0) // contact still there
	opp(sellerA, pc(c1), 1)    // closed
	o5 := opp(sellerB, pc(c1)+cc(c2), 0)
	o6 := opp(sellerA, pc(c3)+cc(c1), 0)
	opp(sellerA, "", 0) // no contact

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids, err := ViewIDs(ctx, e.client, e.cfg.FlagColumn)
	if err != nil {
		t.Fatal(err)
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	tests := []struct {
		view, set, caller string
		want              []string
	}{
		{"All Contacts Not at Company", "contacts", sellerA, sorted(c1, c2)},
		{"All Contacts Not at Company", "contacts", sellerB, sorted(c1, c2)},
		{"My Contacts Not at Company", "contacts", sellerA, sorted(c1)},
		{"My Contacts Not at Company", "contacts", sellerB, sorted(c2)},
		{"All Opportunities at Risk – Contact Left", "opportunities", sellerA, sorted(o1, o2, o5, o6)},
		{"My Opportunities at Risk – Contact Left", "opportunities", sellerA, sorted(o1, o6)},
		{"My Opportunities at Risk – Contact Left", "opportunities", sellerB, sorted(o2, o5)},
	}
	for _, tt := range tests {
		if got := e.viewRows(t, tt.set, ids[tt.view], tt.caller); !slices.Equal(got, tt.want) {
			t.Errorf("%s as %s = %v, want %v", tt.view, tt.caller, got, tt.want)
		}
	}
	// A view of one table cannot be run on another.
	if st, _ := e.webAPI(t, http.MethodGet, "contacts?savedQuery="+ids["All Opportunities at Risk – Contact Left"], "", ""); st != http.StatusBadRequest {
		t.Errorf("opportunity view on contacts = %d, want 400", st)
	}
}
