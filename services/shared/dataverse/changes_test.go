package dataverse_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

func guid(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// readAll follows next links from q to the delta link, returning the ids
// read, the tombstones and the delta link.
func readAll(t *testing.T, c *dataverse.Client, q dataverse.PageQuery) (ids, deleted []string, delta string, pages int) {
	t.Helper()
	for {
		p, err := c.ReadPage(context.Background(), q)
		if err != nil {
			t.Fatalf("ReadPage: %v", err)
		}
		pages++
		for _, r := range p.Rows {
			ids = append(ids, r["contactid"].(string))
		}
		deleted = append(deleted, p.Deleted...)
		if p.NextLink == "" {
			if p.DeltaLink == "" && q.TrackChanges {
				t.Fatal("last page without a delta link")
			}
			return ids, deleted, p.DeltaLink, pages
		}
		q = dataverse.PageQuery{Link: p.NextLink, TrackChanges: q.TrackChanges, PageSize: q.PageSize}
	}
}

func TestChangeTrackingPagesDeltasAndTombstones(t *testing.T) {
	e := newEnv(t, dataversetest.Options{ClientID: "id", ClientSecret: "s"})
	for i := range 7 {
		e.standin.Seed("contacts", guid(i), map[string]any{"fullname": fmt.Sprintf("C%d", i)})
	}
	c := e.client(t, "s")
	q := dataverse.PageQuery{EntitySet: "contacts", Select: []string{"fullname", "versionnumber"}, TrackChanges: true, PageSize: 3}
	ids, _, delta, pages := readAll(t, c, q)
	if len(ids) != 9 || pages != 3 { // 7 seeded + the env's two
		t.Fatalf("initial read: %d rows in %d pages, want 9 in 3", len(ids), pages)
	}
	// Change one, delete one, create and delete one: the delta has the
	// changed row first, then both deletes.
	e.standin.Seed("contacts", guid(2), map[string]any{"fullname": "changed"})
	del := func(id string) {
		if err := c.Delete(context.Background(), mustRow(t, "contacts", id), nil); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	del(guid(5))
	e.standin.Seed("contacts", guid(99), map[string]any{"fullname": "short-lived"})
	del(guid(99))
	ids, deleted, delta2, _ := readAll(t, c, dataverse.PageQuery{Link: delta, TrackChanges: true})
	if !slices.Equal(ids, []string{guid(2)}) {
		t.Errorf("delta rows %v, want only %s", ids, guid(2))
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, []string{guid(5), guid(99)}) {
		t.Errorf("tombstones %v, want %s and %s", deleted, guid(5), guid(99))
	}
	// Nothing changed since: an empty delta, and a new link.
	ids, deleted, _, _ = readAll(t, c, dataverse.PageQuery{Link: delta2, TrackChanges: true})
	if len(ids)+len(deleted) != 0 {
		t.Errorf("empty delta returned %v %v", ids, deleted)
	}
	// An expired token asks for a full read again.
	e.standin.ExpireDeltaTokens()
	if _, err := c.ReadPage(context.Background(), dataverse.PageQuery{Link: delta2, TrackChanges: true}); !errors.Is(err, dataverse.ErrTokenExpired) {
		t.Errorf("expired token: %v, want ErrTokenExpired", err)
	}
}

func mustRow(t *testing.T, set, id string) dataverse.Resource {
	t.Helper()
	r, err := dataverse.RowOf(set, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestChangeTrackingRefusals(t *testing.T) {
	e := newEnv(t, dataversetest.Options{ClientID: "id", ClientSecret: "s"})
	c := e.client(t, "s")
	e.standin.SetChangeTracking("contact", false)
	if _, err := c.ReadPage(context.Background(), dataverse.PageQuery{EntitySet: "contacts", TrackChanges: true}); !errors.Is(err, dataverse.ErrNotTracked) {
		t.Errorf("untracked table: %v, want ErrNotTracked", err)
	}
	// The same read without tracking pages as usual, without a delta link.
	p, err := c.ReadPage(context.Background(), dataverse.PageQuery{EntitySet: "contacts", PageSize: 1})
	if err != nil || len(p.Rows) != 1 || p.NextLink == "" || p.DeltaLink != "" {
		t.Errorf("plain read: %+v, %v", p, err)
	}
	e.standin.SetChangeTracking("contact", true)
	open := newEnv(t, dataversetest.Options{})
	req, _ := http.NewRequest(http.MethodGet, open.srv.URL+dataverse.APIPath+"/contacts?$filter=statecode%20eq%200", nil)
	req.Header.Set("Prefer", "odata.track-changes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("$filter with change tracking: %d, want 400", resp.StatusCode)
	}
	_, err = c.ReadPage(context.Background(), dataverse.PageQuery{EntitySet: "contacts", Select: []string{"no_such_column"}, TrackChanges: true})
	var se *dataverse.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Message, "no_such_column") {
		t.Errorf("unknown column: %v, want a 400 naming it", err)
	}
	counts, err := c.TotalRecordCounts(context.Background(), "contact", "account")
	if err != nil || counts["contact"] != 2 || counts["account"] != 0 {
		t.Errorf("TotalRecordCounts = %v, %v; want contact 2, account 0", counts, err)
	}
}
