package ingest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/ingest/profilefeed"
)

const challengeUUID = "8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b"

// TestChallengeIsNoSigningOracle is the attack of issue 9: a forged event
// body, URL-encoded as the challengeCode, came back signed with the very
// secret that signs events, and the answer, sent as X-LI-Signature, made
// the forged event count. It must get no answer, and nothing is published.
func TestChallengeIsNoSigningOracle(t *testing.T) {
	t.Parallel()
	forged := map[string][]byte{
		"profile.changed": profileChanged(t, "forged-1", "demo-feed"),
		"member.erased":   erasureFrom(t, "forged-2", "demo-feed"),
		"batch":           []byte("[" + string(erasureFrom(t, "forged-3", "demo-feed")) + "]"),
	}
	for name, body := range forged {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			rec := f.do(t, http.MethodGet, "/webhooks/profile?challengeCode="+url.QueryEscape(string(body)), "", nil, nil)
			p := decodeProblem(t, rec, http.StatusBadRequest, "invalid-query")
			if len(p.Errors) != 1 || p.Errors[0].Field != "challengeCode" {
				t.Errorf("errors %+v, want one naming challengeCode", p.Errors)
			}
			var answer struct {
				ChallengeResponse string `json:"challengeResponse"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &answer)
			// Whatever came back, try it as the signature.
			post := f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body,
				map[string]string{"X-LI-Signature": answer.ChallengeResponse})
			if post.Code != http.StatusUnauthorized && post.Code != http.StatusBadRequest {
				t.Errorf("forged POST answered %d: %s", post.Code, post.Body)
			}
			if n := len(f.pub.stored()); n != 0 {
				t.Errorf("%d forged events published", n)
			}
		})
	}
}

func TestChallengeCodeShape(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, code := range []string{
		challengeUUID,
		strings.ToUpper(challengeUUID),
		strings.ReplaceAll(challengeUUID, "-", ""),
		"a_challenge_code_of_letters_0123",
	} {
		rec := f.do(t, http.MethodGet, "/webhooks/profile?challengeCode="+code, "", nil, nil)
		if rec.Code != http.StatusOK {
			t.Errorf("%q: status %d: %s", code, rec.Code, rec.Body)
			continue
		}
		var got map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got["challengeCode"] != code || got["challengeResponse"] != profilefeed.Sign(testSecret, []byte(code)) {
			t.Errorf("%q: answer %v", code, got)
		}
	}
	for _, code := range []string{
		"",
		"short-code",                          // under 16
		strings.Repeat("a", 129),              // over 128
		"12345678901234567890",                // a JSON number
		"-1234567890123456e10",                // a JSON number too
		`{"id":"x","type":"member.erased"}`,   // JSON
		`["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]`, // JSON array
		challengeUUID + " ",                   // space
		challengeUUID + "\n",
		"8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6\u00e9", // not ASCII
		"8f3c2a1e.4b5d.4e6f.9a0b.1c2d3e4f5a6b",
	} {
		f := newFixture(t) // a fresh rate limit for each
		rec := f.do(t, http.MethodGet, "/webhooks/profile?challengeCode="+url.QueryEscape(code), "", nil, nil)
		decodeProblem(t, rec, http.StatusBadRequest, "invalid-query")
	}
}

func TestChallengeRateLimitedPerAddress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ask := func(addr string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/webhooks/profile?challengeCode="+challengeUUID, nil)
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec
	}
	for i := range challengeBurst {
		if rec := ask("203.0.113.7:4000"); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, rec.Code)
		}
	}
	// Bad codes count too: guessing is no cheaper than asking.
	rec := ask("203.0.113.7:4001")
	decodeProblem(t, rec, http.StatusTooManyRequests, "rate-limited")
	if got, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || got < 1 {
		t.Errorf("Retry-After %q, want whole seconds", rec.Header().Get("Retry-After"))
	}
	if got := f.requests("profile_challenge", "", "", "rate_limited"); got != 1 {
		t.Errorf("rate_limited requests %v, want 1", got)
	}
	// Another address has its own bucket.
	if rec := ask("198.51.100.9:4000"); rec.Code != http.StatusOK {
		t.Errorf("another address: %d", rec.Code)
	}
	// Time refills the bucket.
	f.svc.now = func() time.Time { return fixedNow.Add(2 * time.Second) }
	if rec := ask("203.0.113.7:4002"); rec.Code != http.StatusOK {
		t.Errorf("after the refill: %d", rec.Code)
	}
}

func TestClientLimiterIsBounded(t *testing.T) {
	t.Parallel()
	l := newClientLimiter(1, 2, 8)
	now := fixedNow
	for i := range 100 {
		l.allow(fmt.Sprintf("10.0.0.%d", i), now)
	}
	if n := len(l.clients); n > 8 {
		t.Fatalf("%d buckets kept, want at most 8", n)
	}
	// Addresses beyond the bound share one bucket, already used up by
	// the 92 before.
	if ok, wait := l.allow("10.0.1.1", now); ok || wait <= 0 {
		t.Errorf("an address beyond the bound: ok %v wait %v; want the shared, empty bucket", ok, wait)
	}
	// Buckets idle long enough to be full again make room.
	later := now.Add(3 * time.Second)
	if ok, _ := l.allow("10.0.1.2", later); !ok {
		t.Error("no room after the idle buckets refilled")
	}
	if n := len(l.clients); n > 8 {
		t.Errorf("%d buckets kept after the sweep", n)
	}
}
