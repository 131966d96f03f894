package ingest

import (
	"encoding/json"
	"net/http"
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/ingest/profilefeed"
)

const (
	acmeSecret1 = "acme-secret-0000000001"
	acmeSecret2 = "acme-secret-0000000002"
)

// sourcesConfig is testConfig with the source acme and its two secrets.
func sourcesConfig() Config {
	cfg := testConfig()
	cfg.ProfileSources = []ProfileSource{{Name: "acme", Secrets: []string{acmeSecret1, acmeSecret2}}}
	return cfg
}

func signedWith(secret string, body []byte) map[string]string {
	return map[string]string{"X-LI-Signature": profilefeed.Sign(secret, body)}
}

func TestProfileSourceRoutes(t *testing.T) {
	t.Parallel()
	const route = "/webhooks/profile/acme"
	t.Run("either secret while rotating", func(t *testing.T) {
		for i, secret := range []string{acmeSecret2, acmeSecret1} {
			f := newFixtureWith(t, sourcesConfig())
			id := []string{"evt-2", "evt-1"}[i]
			body := erasureFrom(t, id, "acme")
			a := decodeAccepted(t, f.do(t, http.MethodPost, route, "application/json", body, signedWith(secret, body)), "accepted")
			if a.EventID != id {
				t.Errorf("eventId %q, want %q", a.EventID, id)
			}
			msgs := f.pub.stored()
			if len(msgs) != 1 {
				t.Fatalf("%d published, want 1", len(msgs))
			}
			if msgs[0].subject != "nac.profile.erasure.b64_bS5hZGE" || msgs[0].msgID != "profile.acme."+id {
				t.Errorf("subject %q, msgID %q", msgs[0].subject, msgs[0].msgID)
			}
			var e eventsv1.MemberErased
			if err := proto.Unmarshal(msgs[0].data, &e); err != nil || e.GetSource() != "acme" || e.GetMemberId() != "m.ada" {
				t.Errorf("published %v (err %v)", &e, err)
			}
			if got := f.requests("profile", "member.erased", "", "accepted"); got != 1 {
				t.Errorf("accepted requests %v, want 1", got)
			}
		}
	})
	t.Run("event of another source", func(t *testing.T) {
		f := newFixtureWith(t, sourcesConfig())
		body := erasureFrom(t, "evt-1", "other")
		p := decodeProblem(t, f.do(t, http.MethodPost, route, "application/json", body, signedWith(acmeSecret1, body)), http.StatusBadRequest, "invalid-event")
		if len(p.Errors) != 1 || p.Errors[0].Field != "/source" || p.Errors[0].Reason == "" {
			t.Errorf("errors %+v, want one naming /source", p.Errors)
		}
		if f.pub.attempts != 0 {
			t.Error("published an event of another source")
		}
	})
	t.Run("batch with an event of another source", func(t *testing.T) {
		f := newFixtureWith(t, sourcesConfig())
		body := []byte("[" + string(erasureFrom(t, "evt-1", "acme")) + "," + string(erasureFrom(t, "evt-2", "other")) + "]")
		rec := f.do(t, http.MethodPost, route, "application/json", body, signedWith(acmeSecret2, body))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d, want 200; %s", rec.Code, rec.Body)
		}
		var res BatchResult
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 1 || res.Refused != 1 || len(res.Results) != 2 ||
			res.Results[0].Status != "accepted" || res.Results[1].Status != "refused" || res.Results[1].ID != "evt-2" ||
			len(res.Results[1].Errors) != 1 || res.Results[1].Errors[0].Field != "/source" {
			t.Errorf("result %s", rec.Body)
		}
		if n := len(f.pub.stored()); n != 1 {
			t.Errorf("%d published, want 1", n)
		}
	})
	t.Run("shared secret on a source's route", func(t *testing.T) {
		f := newFixtureWith(t, sourcesConfig())
		body := erasureFrom(t, "evt-1", "acme")
		decodeProblem(t, f.do(t, http.MethodPost, route, "application/json", body, signed(body)), http.StatusUnauthorized, "bad-signature")
		if f.pub.attempts != 0 {
			t.Error("published")
		}
	})
	t.Run("source's secret on the shared route", func(t *testing.T) {
		f := newFixtureWith(t, sourcesConfig())
		body := erasureFrom(t, "evt-1", "acme")
		decodeProblem(t, f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signedWith(acmeSecret1, body)), http.StatusUnauthorized, "bad-signature")
		if f.pub.attempts != 0 {
			t.Error("published")
		}
	})
	t.Run("shared route takes any source", func(t *testing.T) {
		f := newFixtureWith(t, sourcesConfig())
		body := erasureFrom(t, "evt-1", "acme")
		decodeAccepted(t, f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signed(body)), "accepted")
	})
	t.Run("unknown source", func(t *testing.T) {
		f := newFixtureWith(t, sourcesConfig())
		body := erasureFrom(t, "evt-1", "unknown")
		for _, secret := range []string{acmeSecret1, testSecret} {
			p := decodeProblem(t, f.do(t, http.MethodPost, "/webhooks/profile/unknown", "application/json", body, signedWith(secret, body)), http.StatusNotFound, "not-found")
			if p.Instance != "/webhooks/profile/unknown" {
				t.Errorf("instance %q", p.Instance)
			}
		}
		decodeProblem(t, f.do(t, http.MethodGet, "/webhooks/profile/unknown?challengeCode=x", "", nil, nil), http.StatusNotFound, "not-found")
		if f.pub.attempts != 0 {
			t.Error("published")
		}
		if got := f.requests("profile", "", "", "unknown_source"); got != 2 {
			t.Errorf("unknown_source requests %v, want 2", got)
		}
	})
	t.Run("challenge answered with the first secret", func(t *testing.T) {
		f := newFixtureWith(t, sourcesConfig())
		rec := f.do(t, http.MethodGet, route+"?challengeCode=8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", "", nil, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var got map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got["challengeCode"] != "8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b" || got["challengeResponse"] != profilefeed.Sign(acmeSecret1, []byte("8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b")) {
			t.Errorf("answer %v, want the HMAC of the code with the first secret", got)
		}
	})
	t.Run("no shared secret: the shared route does not exist", func(t *testing.T) {
		cfg := sourcesConfig()
		cfg.ProfileSecrets = nil
		f := newFixtureWith(t, cfg)
		body := erasureFrom(t, "evt-1", "acme")
		decodeProblem(t, f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signedWith(acmeSecret1, body)), http.StatusNotFound, "not-found")
		decodeProblem(t, f.do(t, http.MethodGet, "/webhooks/profile?challengeCode=x", "", nil, nil), http.StatusNotFound, "not-found")
		if f.pub.attempts != 0 {
			t.Error("published")
		}
		// The source's own route still works.
		decodeAccepted(t, f.do(t, http.MethodPost, route, "application/json", body, signedWith(acmeSecret1, body)), "accepted")
	})
}
