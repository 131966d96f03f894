package dataversetest_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

func patch(t *testing.T, srv string, id string) int {
	return do(t, http.MethodPatch, srv+dataverse.APIPath+"/contacts("+id+")", `{"nac_flag":1}`,
		map[string]string{"Content-Type": "application/json", "If-Match": "*"}).StatusCode
}

// A slow PATCH counts as in progress through its delay: a second PATCH of
// the same row meanwhile is an overlap, one of another row is not.
func TestOverlapsCountsConcurrentWritesOfARow(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	s.Seed("contacts", idA, nil)
	s.Seed("contacts", idB, nil)
	s.Inject(dataversetest.Fault{Delay: 300 * time.Millisecond, Count: 1})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); patch(t, srv.URL, idA) }()
	time.Sleep(100 * time.Millisecond)
	if got := patch(t, srv.URL, idB); got != http.StatusNoContent {
		t.Fatalf("PATCH of another row = %d", got)
	}
	if n := s.Overlaps(); n != 0 {
		t.Errorf("Overlaps = %d after writes of two rows, want 0", n)
	}
	if got := patch(t, srv.URL, idA); got != http.StatusNoContent {
		t.Fatalf("PATCH = %d", got)
	}
	wg.Wait()
	if n := s.Overlaps(); n != 1 {
		t.Errorf("Overlaps = %d, want 1", n)
	}
}

// A fault injected for a row answers only that row, in a $batch part by
// part, and leaves the rest of the batch alone.
func TestRowFault(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	s.Seed("contacts", idA, nil)
	s.Seed("contacts", idB, nil)
	s.Inject(dataversetest.Fault{Row: idB, Status: http.StatusBadRequest, Count: 1})
	body, ct := batchBody(t, []string{idA, idB})
	resp := do(t, http.MethodPost, srv.URL+dataverse.APIPath+"/$batch", body,
		map[string]string{"Content-Type": ct, "Prefer": "odata.continue-on-error"})
	if got := statuses(t, resp); fmt.Sprint(got) != "[204 400]" {
		t.Errorf("part statuses = %v, want [204 400]", got)
	}
	if got := patch(t, srv.URL, idB); got != http.StatusNoContent {
		t.Errorf("PATCH after the fault was used up = %d", got)
	}
}

// Options.Faults answers what no injected fault does.
func TestFaultsFunc(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	n := 0
	s, srv := serve(t, dataversetest.Options{Faults: func() dataversetest.Fault {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n%2 == 1 {
			return dataversetest.Fault{Status: http.StatusServiceUnavailable}
		}
		return dataversetest.Fault{}
	}})
	s.Seed("contacts", idA, nil)
	var got []int
	for range 4 {
		got = append(got, patch(t, srv.URL, idA))
	}
	if fmt.Sprint(got) != "[503 204 503 204]" {
		t.Errorf("answers %v, want every other one failed", got)
	}
}

// Every change is in the journal before it is answered: a stand-in that
// is never stopped cleanly (kill -9) comes back with it.
func TestJournalIsWriteThrough(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "standin.journal")
	j, snap, err := dataversetest.OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	s, srv := serve(t, dataversetest.Options{OnChange: j.Append, Durable: j.Sync})
	s.Restore(snap)
	s.Seed("contacts", idA, map[string]any{"firstname": "Ada"})
	if got := patch(t, srv.URL, idA); got != http.StatusNoContent {
		t.Fatalf("PATCH = %d", got)
	}
	// No Close, no snapshot: read the file as a new process would.
	_, again, err := dataversetest.OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	row := again.Rows["contacts"][idA]
	if row["nac_flag"] != float64(1) || row["firstname"] != "Ada" {
		t.Errorf("row after a crash = %v, want the patched flag and the seeded columns", row)
	}
}

// A change that cannot be made durable is not answered as written, and a
// read does not wait for durability.
func TestDurableFailureAnswers503(t *testing.T) {
	t.Parallel()
	var syncs atomic.Int32 // called on the server's goroutine
	s, srv := serve(t, dataversetest.Options{Durable: func() error { syncs.Add(1); return os.ErrClosed }})
	s.Seed("contacts", idA, nil)
	if got := patch(t, srv.URL, idA); got != http.StatusServiceUnavailable {
		t.Errorf("PATCH = %d, want 503", got)
	}
	if n := syncs.Load(); n != 1 {
		t.Errorf("Durable called %d times for one PATCH, want 1", n)
	}
	resp := do(t, http.MethodGet, srv.URL+dataverse.APIPath+"/contacts("+idA+")", "", nil)
	if n := syncs.Load(); resp.StatusCode != http.StatusOK || n != 1 {
		t.Errorf("GET = %d after %d syncs, want 200 without a sync", resp.StatusCode, n)
	}
}

// A line cut short by a crash mid-append was never answered: the journal
// opens with every entry before it.
func TestJournalToleratesATornLastLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "standin.journal")
	good := `{"set":"contacts","id":"` + idA + `","row":{"nac_flag":1}}` + "\n"
	if err := os.WriteFile(path, []byte(good+`{"set":"contacts","id":"`), 0o600); err != nil {
		t.Fatal(err)
	}
	j, snap, err := dataversetest.OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if snap.Rows["contacts"][idA]["nac_flag"] != float64(1) || len(snap.Rows["contacts"]) != 1 {
		t.Errorf("rows = %v, want the one complete entry", snap.Rows)
	}
}

// A change the journal cannot store is not answered as written.
func TestJournalFailureAnswers503(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{OnChange: func(string, string, map[string]any) error { return os.ErrClosed }})
	s.Seed("contacts", idA, nil)
	if got := patch(t, srv.URL, idA); got != http.StatusServiceUnavailable {
		t.Errorf("PATCH = %d, want 503", got)
	}
	if row, _ := s.Row("contacts", idA); row["nac_flag"] != nil {
		t.Errorf("row changed although not stored: %v", row)
	}
}
