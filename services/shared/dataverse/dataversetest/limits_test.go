package dataversetest_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// refusal is a 429 as the limits give it.
type refusal struct {
	code       string
	retryAfter int
}

func refused(t *testing.T, resp *http.Response) refusal {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", resp.StatusCode)
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Message == "" {
		t.Fatalf("429 body: %v %+v", err, body)
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	return refusal{body.Error.Code, secs}
}

func batchOf(t *testing.T, srv string, ids ...string) *http.Response {
	t.Helper()
	body, ct := batchBody(t, ids)
	return do(t, http.MethodPost, srv+dataverse.APIPath+"/$batch", body, map[string]string{"Content-Type": ct, "Prefer": "odata.continue-on-error"})
}

// A $batch is one request toward the number of requests, however many
// operations it holds; the request over the limit is refused with the
// documented code and a Retry-After until the oldest leaves the window.
func TestLimitsBatchIsOneRequest(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{Limits: &dataversetest.Limits{Requests: 3, Window: time.Minute}})
	ids := []string{idA, idB, "cccccccc-cccc-cccc-cccc-cccccccccccc", "dddddddd-dddd-dddd-dddd-dddddddddddd", "eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee"}
	for _, id := range ids {
		s.Seed("contacts", id, nil)
	}
	for i := range 3 {
		resp := batchOf(t, srv.URL, ids...)
		if got := statuses(t, resp); len(got) != 5 {
			t.Fatalf("batch %d: %v", i, got)
		}
		rl := dataverse.ReadRateLimit(resp.StatusCode, resp.Header)
		if rl.BurstRemaining != 2-i {
			t.Errorf("batch %d: burst remaining %d, want %d", i, rl.BurstRemaining, 2-i)
		}
	}
	r := refused(t, do(t, http.MethodPatch, contactURL(srv, idA), `{"nac_flag":1}`, map[string]string{"If-Match": "*"}))
	if r.code != dataversetest.CodeRequests || r.retryAfter > 60 || r.retryAfter < 59 {
		t.Errorf("refusal %+v, want %s after about 60 s", r, dataversetest.CodeRequests)
	}
	st := s.LimitStats()
	if st.Requests != 3 || st.Operations != 15 || st.Throttled[dataversetest.CodeRequests] != 1 || s.Throttled() != 1 || s.Patches() != 15 {
		t.Errorf("stats %+v, throttled %d, patches %d", st, s.Throttled(), s.Patches())
	}
}

// The execution time of every operation of a batch counts: the stand-in
// really takes OperationTime per operation, charges it, says what is left
// in Dataverse's format, and refuses once the window's time is spent,
// until the charges leave the window.
func TestLimitsExecutionTime(t *testing.T) {
	t.Parallel()
	const op, window = 40 * time.Millisecond, 1500 * time.Millisecond
	s, srv := serve(t, dataversetest.Options{Limits: &dataversetest.Limits{ExecutionTime: 200 * time.Millisecond, Window: window, OperationTime: op}})
	ids := []string{idA, idB, "cccccccc-cccc-cccc-cccc-cccccccccccc", "dddddddd-dddd-dddd-dddd-dddddddddddd", "eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee"}
	for _, id := range ids {
		s.Seed("contacts", id, nil)
	}
	resp := do(t, http.MethodPatch, contactURL(srv, idA), `{"nac_flag":1}`, map[string]string{"If-Match": "*"})
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("x-ms-ratelimit-time-remaining-xrm-requests") != "0.16" {
		t.Fatalf("PATCH = %d, time remaining %q, want 204 and 0.16", resp.StatusCode, resp.Header.Get("x-ms-ratelimit-time-remaining-xrm-requests"))
	}
	start := time.Now()
	resp = batchOf(t, srv.URL, ids[:4]...)
	statuses(t, resp)
	if took := time.Since(start); took < 4*op {
		t.Errorf("a batch of 4 took %s, want at least 4 × %s", took, op)
	}
	if rl := dataverse.ReadRateLimit(resp.StatusCode, resp.Header); rl.TimeRemaining != 0 {
		t.Errorf("time remaining %s after 5 operations of 40 ms against 200 ms", rl.TimeRemaining)
	}
	first := time.Now()
	r := refused(t, do(t, http.MethodGet, contactURL(srv, idA), "", nil))
	if r.code != dataversetest.CodeExecutionTime || r.retryAfter != 2 {
		t.Errorf("refusal %+v, want %s after 2 s (1.5 s rounded up)", r, dataversetest.CodeExecutionTime)
	}
	// The first charge leaves the window 1.5 s after it came: then there is
	// room again, not before.
	testkit.Eventually(t, "room again", 3*window, func() bool {
		return do(t, http.MethodGet, contactURL(srv, idA), "", nil).StatusCode == http.StatusOK
	})
	if waited := time.Since(first); waited < window*8/10 {
		t.Errorf("room again after %s, want about %s", waited, window)
	}
	if st := s.LimitStats(); st.Operations != 6 || st.ExecutionTime != 6*op || st.Throttled[dataversetest.CodeExecutionTime] < 1 {
		t.Errorf("stats %+v", st)
	}
}

// Requests in progress at once are limited, a $batch being one; the
// refusal is immediate and over as soon as one ends.
func TestLimitsConcurrency(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{Limits: &dataversetest.Limits{Concurrent: 2, OperationTime: 400 * time.Millisecond, DOPHint: 2}})
	s.Seed("contacts", idA, nil)
	s.Seed("contacts", idB, nil)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, id := range []string{idA, idB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				codes[i] = batchOf(t, srv.URL, id).StatusCode
			} else {
				codes[i] = do(t, http.MethodPatch, contactURL(srv, id), `{"nac_flag":1}`, map[string]string{"If-Match": "*"}).StatusCode
			}
		}()
	}
	testkit.Eventually(t, "two requests in progress", 5*time.Second, func() bool { return s.LimitStats().PeakConcurrent == 2 })
	resp := do(t, http.MethodGet, contactURL(srv, idA), "", nil)
	if r := refused(t, resp); r.code != dataversetest.CodeConcurrency || r.retryAfter != 1 {
		t.Errorf("refusal %+v, want %s after 1 s", r, dataversetest.CodeConcurrency)
	}
	if h := resp.Header.Get("x-ms-dop-hint"); h != "2" {
		t.Errorf("x-ms-dop-hint %q, want 2", h)
	}
	wg.Wait()
	if codes[0] != http.StatusOK || codes[1] != http.StatusNoContent {
		t.Errorf("the two in progress answered %v", codes)
	}
	if resp := do(t, http.MethodGet, contactURL(srv, idA), "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after both ended: %d", resp.StatusCode)
	}
	if st := s.LimitStats(); st.PeakConcurrent != 2 || st.Throttled[dataversetest.CodeConcurrency] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// Limits are per user: the application user's requests do not use up
// anonymous readers' and the other way round.
func TestLimitsPerUser(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{ClientID: "app", ClientSecret: "secret", AnonymousReads: true,
		Limits: &dataversetest.Limits{Requests: 1, Window: time.Minute}})
	s.Seed("contacts", idA, nil)
	tok, _ := token(t, srv, "app", "secret")
	auth := map[string]string{"Authorization": "Bearer " + tok, "If-Match": "*"}
	if resp := do(t, http.MethodPatch, contactURL(srv, idA), `{"nac_flag":1}`, auth); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("the user's first request = %d", resp.StatusCode)
	}
	if resp := do(t, http.MethodGet, contactURL(srv, idA), "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("an anonymous read after the user's limit = %d, want 200", resp.StatusCode)
	}
	refused(t, do(t, http.MethodPatch, contactURL(srv, idA), `{"nac_flag":1}`, auth))
	refused(t, do(t, http.MethodGet, contactURL(srv, idA), "", nil))
}
