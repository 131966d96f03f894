package ingest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingReader counts the bytes read from it.
type countingReader struct {
	r    io.Reader
	read atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// serve sends body (length -1: unknown, chunked) to f and reports how much
// of it the service read.
func (f *fixture) serve(target, contentType string, body []byte, length int64, header map[string]string) (*httptest.ResponseRecorder, int64) {
	cr := &countingReader{r: bytes.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, target, cr)
	req.ContentLength = length
	return f.send(req, contentType, header), cr.read.Load()
}

func TestRefusedBeforeTheBodyIsRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t) // 64 KiB limits
	big := bytes.Repeat([]byte("x"), 1<<20)
	forgedSig := map[string]string{"X-LI-Signature": strings.Repeat("ab", 32)}
	for _, tc := range []struct {
		name        string
		target      string
		contentType string
		length      int64
		header      map[string]string
		status      int
		kind        string
	}{
		{"profile without a signature", "/webhooks/profile", "application/json", int64(len(big)), nil, http.StatusUnauthorized, "bad-signature"},
		{"profile with a malformed signature", "/webhooks/profile", "application/json", -1, map[string]string{"X-LI-Signature": "hmacsha256=nothex"}, http.StatusUnauthorized, "bad-signature"},
		{"profile declaring more than its limit", "/webhooks/profile", "application/json", int64(len(big)), forgedSig, http.StatusRequestEntityTooLarge, "body-too-large"},
		{"profile without Content-Type", "/webhooks/profile", "", int64(len(big)), forgedSig, http.StatusUnsupportedMediaType, "unsupported-media-type"},
		{"dataverse with a wrong key", dataverseURL("wrong-key-0000000000"), "application/json", int64(len(big)), nil, http.StatusUnauthorized, "unauthorized"},
		{"dataverse declaring more than its limit", dataverseURL(testKey), "application/json", int64(len(big)), nil, http.StatusRequestEntityTooLarge, "body-too-large"},
		{"dataverse without Content-Type", dataverseURL(testKey), "", int64(len(big)), nil, http.StatusUnsupportedMediaType, "unsupported-media-type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, read := f.serve(tc.target, tc.contentType, big, tc.length, tc.header)
			decodeProblem(t, rec, tc.status, tc.kind)
			if read != 0 {
				t.Errorf("read %d bytes of a body it refused", read)
			}
		})
	}
}

func TestBodyOfUnknownLengthReadNoFurtherThanTheLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t) // 64 KiB limits
	big := bytes.Repeat([]byte("x"), 1<<20)
	rec, read := f.serve("/webhooks/profile", "application/json", big, -1, map[string]string{"X-LI-Signature": strings.Repeat("ab", 32)})
	decodeProblem(t, rec, http.StatusRequestEntityTooLarge, "body-too-large")
	if limit := int64(f.svc.cfg.ProfileMaxBodyBytes); read > limit+32<<10 {
		t.Errorf("read %d bytes of a chunked body over the %d limit", read, limit)
	}
	// Within the limit, a chunked body is taken like any other.
	body := profileBody(t, "chunked-1")
	rec, _ = f.serve("/webhooks/profile", "application/json", body, -1, signed(body))
	decodeAccepted(t, rec, "accepted")
}

func TestProfileBodyLimitIsItsOwn(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.DataverseMaxBodyBytes, cfg.ProfileMaxBodyBytes = 1<<20, 64<<10
	f := newFixtureWith(t, cfg)
	// 100 KiB: a Dataverse body of that size is fine, a profile batch is not.
	pad := strings.Repeat("x", 100<<10)
	dv := withChanges(t, contactFixture(t), func(doc map[string]any) { doc["Padding"] = pad })
	decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", dv, nil), "accepted")
	body := []byte(strings.Replace(string(profileBody(t, "big-1")), `"id"`, `"x":"`+pad+`","id"`, 1))
	decodeProblem(t, f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signed(body)), http.StatusRequestEntityTooLarge, "body-too-large")
}

// TestInflightBudgetFullAnswers503Unread holds the whole in-flight budget
// with a body that does not end; the next request waits briefly, then is
// answered 503 with Retry-After without a byte of it read, and is taken
// once the budget is free again.
func TestInflightBudgetFullAnswers503Unread(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxInflightBytes = 2 * cfg.DataverseMaxBodyBytes // one body of unknown length takes it all
	f := newFixtureWith(t, cfg)

	pr, pw := io.Pipe()
	held := httptest.NewRequest(http.MethodPost, dataverseURL(testKey), pr)
	held.ContentLength = -1
	held.Header.Set("Content-Type", "application/json")
	heldDone := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, held)
		heldDone <- rec.Code
	}()
	if _, err := pw.Write([]byte(`{"MessageName":`)); err != nil { // the handler is reading: it holds the budget
		t.Fatal(err)
	}

	body := contactFixture(t)
	start := time.Now()
	rec, read := f.serve(dataverseURL(testKey), "application/json", body, int64(len(body)), nil)
	decodeProblem(t, rec, http.StatusServiceUnavailable, "busy")
	if rec.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if read != 0 {
		t.Errorf("read %d bytes while the budget was full", read)
	}
	if waited := time.Since(start); waited < inflightWait {
		t.Errorf("answered after %v, before the %v wait", waited, inflightWait)
	}
	if got := f.requests("dataverse", "", "", "busy"); got != 1 {
		t.Errorf("busy requests %v, want 1", got)
	}

	_ = pw.CloseWithError(io.ErrUnexpectedEOF)
	if code := <-heldDone; code != http.StatusBadRequest {
		t.Errorf("the held request ended with %d, want 400", code)
	}
	rec, _ = f.serve(dataverseURL(testKey), "application/json", body, int64(len(body)), nil)
	decodeAccepted(t, rec, "accepted")
}
