package provision

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func item(res Result, comp string) (Item, bool) {
	for _, it := range res.Items {
		if it.Component == comp {
			return it, true
		}
	}
	return Item{}, false
}

func TestLinkedInColumnIsLeftAloneByDefault(t *testing.T) {
	e := newEnv(t)
	e.standin.DefineColumn("contact", LinkedInColumn, "Picklist", 0, 1, 2)
	res := e.provision(t, Apply)
	it, ok := item(res, "column contact."+LinkedInColumn)
	if !ok || it.Action != Unchanged || !strings.Contains(it.Detail, "left alone") {
		t.Fatalf("LinkedIn's column: %+v", it)
	}
	if it, _ := item(res, "column contact.nac_orgchangestatus"); it.Action != Create {
		t.Fatalf("our column: %+v", it)
	}
	_, body := e.webAPI(t, http.MethodGet, "sdkmessageprocessingsteps?$filter=name%20eq%20'notatcompany:%20Update%20of%20contact'&$select=filteringattributes", "", "")
	if strings.Contains(string(body), LinkedInColumn) || !strings.Contains(string(body), "nac_orgchangestatus") {
		t.Errorf("filtering attributes: %s", body)
	}
}

func TestTakeOverLinkedInColumn(t *testing.T) {
	e := newEnv(t)
	e.cfg.FlagColumn, e.cfg.TakeOverLinkedIn = LinkedInColumn, true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Not in the organization: a conflict, nothing created in its place.
	res, err := (&Runner{Client: e.client, Config: e.cfg}).Provision(ctx, DryRun)
	if it, _ := item(res, "column contact."+LinkedInColumn); !errors.Is(err, ErrConflict) || it.Action != Conflict {
		t.Fatalf("absent LinkedIn column: %v %+v", err, it)
	}
	e.standin.DefineColumn("contact", LinkedInColumn, "Picklist", 0, 1, 2)
	e.standin.Seed("contacts", "c0000000-0000-4000-8000-000000000001", map[string]any{LinkedInColumn: float64(2)})
	res, err = (&Runner{Client: e.client, Config: e.cfg}).Provision(ctx, Apply)
	if it, _ := item(res, "column contact."+LinkedInColumn); !errors.Is(err, ErrConflict) || !strings.Contains(it.Detail, "LinkedIn flags") {
		t.Fatalf("LinkedIn flags present: %v %+v", err, it)
	}
	e.standin.Seed("contacts", "c0000000-0000-4000-8000-000000000001", map[string]any{LinkedInColumn: float64(0)})
	res = e.provision(t, Apply)
	if it, _ := item(res, "column contact."+LinkedInColumn); it.Action != Unchanged {
		t.Fatalf("taken over: %+v", it)
	}
	if _, ok := item(res, "column contact.nac_orgchangestatus"); ok {
		t.Error("our column was planned in takeover mode")
	}
	ids, err := ViewIDs(ctx, e.client, LinkedInColumn)
	if err != nil || len(ids) != 4 {
		t.Fatalf("views on LinkedIn's column: %v %v", ids, err)
	}
	_, body := e.webAPI(t, http.MethodGet, "savedqueries("+ids["All Contacts Not at Company"]+")?$select=fetchxml", "", "")
	if !strings.Contains(string(body), LinkedInColumn) {
		t.Errorf("the view does not use LinkedIn's column: %s", body)
	}
}

func TestViewNamesTakenByAnotherProduct(t *testing.T) {
	// Our view is relabelled as another product's (LinkedIn's own view has
	// this very name in orgs with Sales Navigator).
	f := newEnv(t)
	f.provision(t, Apply)
	ctx := context.Background()
	ids, _ := ViewIDs(ctx, f.client, f.cfg.FlagColumn)
	id := ids["All Contacts Not at Company"]
	if st, b := f.webAPI(t, http.MethodPatch, "savedqueries("+id+")", `{"description":"LinkedIn Sales Navigator view"}`, ""); st != 204 {
		t.Fatalf("%d %s", st, b)
	}
	res := f.provision(t, Apply)
	it, _ := item(res, "view All Contacts Not at Company")
	if it.Action != Create || !strings.Contains(it.Detail, `"All Contacts Not at Company (notatcompany)"`) {
		t.Fatalf("view with a taken name: %+v", it)
	}
	_, body := f.webAPI(t, http.MethodGet, "savedqueries("+id+")?$select=description", "", "")
	if !strings.Contains(string(body), "LinkedIn") {
		t.Errorf("the other product's view was changed: %s", body)
	}
	if again := f.provision(t, Apply); len(again.Drifted()) != 0 {
		t.Errorf("not stable with the suffix: %+v", again.Drifted())
	}
}
