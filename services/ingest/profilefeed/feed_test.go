package profilefeed

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/problem"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	secret    = "profile-secret-0123456789"
	newSecret = "profile-secret-rotated-9876"
)

func TestSignKnownVector(t *testing.T) {
	// RFC 4231-style well-known HMAC-SHA256 vector.
	got := Sign("key", []byte("The quick brown fox jumps over the lazy dog"))
	if want := "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if got, want := Sign("key", []byte("")), "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"; got != want {
		t.Errorf("Sign of empty = %s, want %s", got, want)
	}
	// The challenge response is the same HMAC over the challenge code.
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("challenge-abc"))
	if got, want := Sign(secret, []byte("challenge-abc")), hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("Sign of a challenge = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"evt-1","type":"member.erased"}`)
	sig := Sign(secret, body)
	if len(sig) != 64 {
		t.Fatalf("signature %q: want 64 hex digits", sig)
	}
	flipped := []byte(sig)
	if flipped[10] == '0' {
		flipped[10] = '1'
	} else {
		flipped[10] = '0'
	}
	for _, tc := range []struct {
		name    string
		secrets []string
		body    []byte
		header  string
		want    bool
	}{
		{"bare", []string{secret}, body, sig, true},
		{"prefixed", []string{secret}, body, "hmacsha256=" + sig, true},
		{"surrounding space", []string{secret}, body, " hmacsha256=" + sig + " ", true},
		{"upper-case hex", []string{secret}, body, strings.ToUpper(sig), true},
		{"one digit changed", []string{secret}, body, string(flipped), false},
		{"other body", []string{secret}, append([]byte(nil), append(body, ' ')...), sig, false},
		{"wrong secret", []string{newSecret}, body, sig, false},
		{"missing", []string{secret}, body, "", false},
		{"prefix only", []string{secret}, body, "hmacsha256=", false},
		{"too short", []string{secret}, body, sig[:62], false},
		{"too long", []string{secret}, body, sig + "00", false},
		{"not hex", []string{secret}, body, strings.Repeat("zz", 32), false},
		{"other prefix", []string{secret}, body, "sha256=" + sig, false},
		{"rotation: old secret", []string{secret, newSecret}, body, sig, true},
		{"rotation: new secret", []string{secret, newSecret}, body, Sign(newSecret, body), true},
		{"rotation: new secret listed first", []string{newSecret, secret}, body, sig, true},
		{"rotation: neither", []string{secret, newSecret}, body, Sign("a-third-secret-xxxxxx", body), false},
		{"no secrets", nil, body, sig, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Verify(tc.secrets, tc.body, tc.header); got != tc.want {
				t.Errorf("Verify = %v, want %v", got, tc.want)
			}
		})
	}
}

var received = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

func emailHash(addr string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(addr))))
	return hex.EncodeToString(sum[:])
}

// Event builders: each returns a fresh, valid event as a generic map that a
// case can break.

func profileEvent() map[string]any {
	return map[string]any{
		"id":         "evt-profile-1",
		"type":       "profile.changed",
		"source":     "demo-feed",
		"observedAt": "2026-03-04T11:00:00.5Z",
		"data": map[string]any{
			"memberId":    "m-ada",
			"profileUrl":  "https://www.linkedin.com/in/ada",
			"firstName":   "Ada",
			"lastName":    "Lovelace",
			"country":     "GB",
			"emailSha256": []any{emailHash("Ada@Example.com"), emailHash("ada@contoso.com")},
			"positions": []any{
				map[string]any{"companyId": "c-contoso", "companyName": "Contoso Ltd", "title": "CTO",
					"start": map[string]any{"year": 2024, "month": 2}, "current": true},
				map[string]any{"companyName": "Fabrikam", "title": "Engineer",
					"start": map[string]any{"year": 2015, "month": 1}, "end": map[string]any{"year": 2023, "month": 12}},
			},
		},
	}
}

func companyEvent() map[string]any {
	return map[string]any{
		"id":         "evt-company-1",
		"type":       "company.changed",
		"source":     "demo-feed",
		"observedAt": "2026-03-04T11:30:00+01:00",
		"data": map[string]any{
			"companyId":          "c-contoso",
			"name":               "Contoso Ltd",
			"domains":            []any{" Contoso.COM ", "contoso.co.uk"},
			"parentCompanyId":    "c-contoso-group",
			"successorCompanyId": "c-fabrikam",
		},
	}
}

func erasureEvent() map[string]any {
	return map[string]any{
		"id":         "evt-erase-1",
		"type":       "member.erased",
		"source":     "demo-feed",
		"observedAt": "2026-03-04T11:59:00Z",
		"data":       map[string]any{"memberId": "m-ada"},
	}
}

func raw(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func data(ev map[string]any) map[string]any { return ev["data"].(map[string]any) }

func position(ev map[string]any, i int) map[string]any {
	return data(ev)["positions"].([]any)[i].(map[string]any)
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func mustDecode(t *testing.T, ev map[string]any) *Event {
	t.Helper()
	got, err := Decode(raw(t, ev), received)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return got
}

func wantProto(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s =\n%s\nwant\n%s", what, prototext.Format(got), prototext.Format(want))
	}
}

func TestDecodeProfile(t *testing.T) {
	ev := mustDecode(t, profileEvent())
	if ev.ID != "evt-profile-1" || ev.Type != TypeProfileChanged {
		t.Errorf("ID, Type = %q, %q", ev.ID, ev.Type)
	}
	if ev.Company != nil || ev.Erasure != nil {
		t.Errorf("more than the profile is set: %+v", ev)
	}
	wantProto(t, "Profile", ev.Profile, &eventsv1.ProfileChange{
		EventId:     "evt-profile-1",
		Source:      "demo-feed",
		MemberId:    "m-ada",
		ProfileUrl:  "https://www.linkedin.com/in/ada",
		FirstName:   "Ada",
		LastName:    "Lovelace",
		Country:     "GB",
		EmailSha256: []string{emailHash("ada@example.com"), emailHash("ada@contoso.com")},
		Positions: []*eventsv1.Position{
			{CompanyId: "c-contoso", CompanyName: "Contoso Ltd", Title: "CTO", Start: &eventsv1.YearMonth{Year: 2024, Month: 2}, Current: true},
			{CompanyName: "Fabrikam", Title: "Engineer", Start: &eventsv1.YearMonth{Year: 2015, Month: 1}, End: &eventsv1.YearMonth{Year: 2023, Month: 12}},
		},
		ObservedAt: ts(time.Date(2026, 3, 4, 11, 0, 0, 500_000_000, time.UTC)),
		ReceivedAt: ts(received),
	})
}

func TestDecodeCompany(t *testing.T) {
	ev := mustDecode(t, companyEvent())
	if ev.ID != "evt-company-1" || ev.Type != TypeCompanyChanged || ev.Profile != nil || ev.Erasure != nil {
		t.Errorf("event %+v", ev)
	}
	wantProto(t, "Company", ev.Company, &eventsv1.CompanyChange{
		EventId:            "evt-company-1",
		Source:             "demo-feed",
		CompanyId:          "c-contoso",
		Name:               "Contoso Ltd",
		Domains:            []string{"contoso.com", "contoso.co.uk"}, // trimmed and lower-cased
		ParentCompanyId:    "c-contoso-group",
		SuccessorCompanyId: "c-fabrikam",
		ObservedAt:         ts(time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)), // +01:00
		ReceivedAt:         ts(received),
	})
}

func TestDecodeErasure(t *testing.T) {
	ev := mustDecode(t, erasureEvent())
	if ev.ID != "evt-erase-1" || ev.Type != TypeMemberErased || ev.Profile != nil || ev.Company != nil {
		t.Errorf("event %+v", ev)
	}
	wantProto(t, "Erasure", ev.Erasure, &eventsv1.MemberErased{
		EventId:    "evt-erase-1",
		Source:     "demo-feed",
		MemberId:   "m-ada",
		ObservedAt: ts(time.Date(2026, 3, 4, 11, 59, 0, 0, time.UTC)),
		ReceivedAt: ts(received),
	})
}

func TestDecodeAcceptsEdgeValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   func() map[string]any
	}{
		{"observed 4 minutes ahead (clock skew)", func() map[string]any {
			ev := erasureEvent()
			ev["observedAt"] = received.Add(4 * time.Minute).Format(time.RFC3339)
			return ev
		}},
		{"id of 200 characters", func() map[string]any {
			ev := erasureEvent()
			ev["id"] = strings.Repeat("x", 200)
			return ev
		}},
		{"year-only dates in the same year", func() map[string]any {
			ev := profileEvent()
			p := position(ev, 1)
			p["start"] = map[string]any{"year": 2023, "month": 6}
			p["end"] = map[string]any{"year": 2023, "month": 0}
			return ev
		}},
		{"no positions, no emails", func() map[string]any {
			ev := profileEvent()
			delete(data(ev), "positions")
			delete(data(ev), "emailSha256")
			return ev
		}},
		{"position with companyId only", func() map[string]any {
			ev := profileEvent()
			delete(position(ev, 0), "companyName")
			return ev
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(raw(t, tc.ev()), received); err != nil {
				t.Errorf("Decode: %v", err)
			}
		})
	}
}

// fieldNames lists the field of every *problem.FieldError in err's tree, sorted.
func fieldNames(err error) []string {
	var names []string
	var walk func(error)
	walk = func(err error) {
		var fe *problem.FieldError
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		if errors.As(err, &fe) {
			names = append(names, fe.Field)
		}
	}
	walk(err)
	slices.Sort(names)
	return names
}

func TestDecodeSchemaViolations(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ev     func() map[string]any
		fields []string
	}{
		{"id missing", func() map[string]any { ev := profileEvent(); delete(ev, "id"); return ev }, []string{"/id"}},
		{"id with a space", func() map[string]any { ev := profileEvent(); ev["id"] = "evt 1"; return ev }, []string{"/id"}},
		{"id too long", func() map[string]any { ev := profileEvent(); ev["id"] = strings.Repeat("x", 201); return ev }, []string{"/id"}},
		{"source missing", func() map[string]any { ev := profileEvent(); delete(ev, "source"); return ev }, []string{"/source"}},
		{"source blank", func() map[string]any { ev := companyEvent(); ev["source"] = "  "; return ev }, []string{"/source"}},
		{"observedAt missing", func() map[string]any { ev := profileEvent(); delete(ev, "observedAt"); return ev }, []string{"/observedAt"}},
		{"observedAt invalid", func() map[string]any { ev := profileEvent(); ev["observedAt"] = "2026-03-04 11:00"; return ev }, []string{"/observedAt"}},
		{"observedAt in the future", func() map[string]any {
			ev := profileEvent()
			ev["observedAt"] = received.Add(6 * time.Minute).Format(time.RFC3339)
			return ev
		}, []string{"/observedAt"}},
		{"type unknown", func() map[string]any { ev := profileEvent(); ev["type"] = "profile.deleted"; return ev }, []string{"/type"}},
		{"type missing", func() map[string]any { ev := profileEvent(); delete(ev, "type"); return ev }, []string{"/type"}},
		{"data missing", func() map[string]any { ev := profileEvent(); delete(ev, "data"); return ev }, []string{"/data"}},
		{"data null", func() map[string]any { ev := erasureEvent(); ev["data"] = nil; return ev }, []string{"/data"}},
		{"data not an object", func() map[string]any { ev := companyEvent(); ev["data"] = []any{1}; return ev }, []string{"/data"}},
		{"unknown data field", func() map[string]any { ev := profileEvent(); data(ev)["nickname"] = "x"; return ev }, []string{"/data"}},
		{"unknown envelope field", func() map[string]any { ev := profileEvent(); ev["extra"] = 1; return ev }, []string{"/"}},
		{"profile memberId missing", func() map[string]any { ev := profileEvent(); delete(data(ev), "memberId"); return ev }, []string{"/data/memberId"}},
		{"erasure memberId missing", func() map[string]any { ev := erasureEvent(); data(ev)["memberId"] = ""; return ev }, []string{"/data/memberId"}},
		{"emailSha256 not hex", func() map[string]any {
			ev := profileEvent()
			data(ev)["emailSha256"].([]any)[1] = strings.Repeat("zz", 32)
			return ev
		}, []string{"/data/emailSha256/1"}},
		{"emailSha256 upper case", func() map[string]any {
			ev := profileEvent()
			data(ev)["emailSha256"].([]any)[0] = strings.ToUpper(emailHash("a@b.c"))
			return ev
		}, []string{"/data/emailSha256/0"}},
		{"emailSha256 a plain address", func() map[string]any {
			ev := profileEvent()
			data(ev)["emailSha256"] = []any{"ada@example.com"}
			return ev
		}, []string{"/data/emailSha256/0"}},
		{"position without company", func() map[string]any {
			ev := profileEvent()
			p := position(ev, 1)
			delete(p, "companyId")
			p["companyName"] = " "
			return ev
		}, []string{"/data/positions/1/companyName"}},
		{"current position with an end", func() map[string]any {
			ev := profileEvent()
			position(ev, 0)["end"] = map[string]any{"year": 2025, "month": 1}
			return ev
		}, []string{"/data/positions/0/end"}},
		{"end before start (year)", func() map[string]any {
			ev := profileEvent()
			position(ev, 1)["end"] = map[string]any{"year": 2014, "month": 12}
			return ev
		}, []string{"/data/positions/1/end"}},
		{"end before start (years, months unknown)", func() map[string]any {
			ev := profileEvent()
			position(ev, 1)["end"] = map[string]any{"year": 2015, "month": 0}
			position(ev, 1)["start"] = map[string]any{"year": 2016, "month": 0}
			return ev
		}, []string{"/data/positions/1/end"}},
		{"end before start (same year)", func() map[string]any {
			ev := profileEvent()
			position(ev, 1)["start"] = map[string]any{"year": 2020, "month": 9}
			position(ev, 1)["end"] = map[string]any{"year": 2020, "month": 3}
			return ev
		}, []string{"/data/positions/1/end"}},
		{"start year out of range", func() map[string]any {
			ev := profileEvent()
			position(ev, 0)["start"] = map[string]any{"year": 1899, "month": 1}
			return ev
		}, []string{"/data/positions/0/start/year"}},
		{"end month out of range", func() map[string]any {
			ev := profileEvent()
			position(ev, 1)["end"] = map[string]any{"year": 2023, "month": 13}
			return ev
		}, []string{"/data/positions/1/end/month"}},
		{"company name missing", func() map[string]any { ev := companyEvent(); delete(data(ev), "name"); return ev }, []string{"/data/name"}},
		{"companyId missing", func() map[string]any { ev := companyEvent(); delete(data(ev), "companyId"); return ev }, []string{"/data/companyId"}},
		{"domain with a scheme", func() map[string]any {
			ev := companyEvent()
			data(ev)["domains"] = []any{"https://contoso.com"}
			return ev
		}, []string{"/data/domains/0"}},
		{"domain with a path, an address and a blank", func() map[string]any {
			ev := companyEvent()
			data(ev)["domains"] = []any{"contoso.com", "contoso.com/about", "info@contoso.com", " ", "contoso.com:443"}
			return ev
		}, []string{"/data/domains/1", "/data/domains/2", "/data/domains/3", "/data/domains/4"}},
		{"every envelope field at once", func() map[string]any {
			return map[string]any{"type": "company.changed", "data": data(companyEvent())}
		}, []string{"/id", "/observedAt", "/source"}},
		{"envelope and data problems together", func() map[string]any {
			ev := companyEvent()
			delete(ev, "source")
			delete(data(ev), "name")
			return ev
		}, []string{"/data/name", "/source"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := Decode(raw(t, tc.ev()), received)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", ev)
			}
			if ev != nil {
				t.Errorf("an event came with the error: %+v", ev)
			}
			var fe *problem.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v holds no *problem.FieldError", err)
			}
			if got := fieldNames(err); !slices.Equal(got, tc.fields) {
				t.Errorf("fields %v, want %v (err: %v)", got, tc.fields, err)
			}
		})
	}
}

func TestDecodeNotAnObject(t *testing.T) {
	for _, body := range []string{`[1]`, `"event"`, `{"id":`, `{"id": 5}`} {
		ev, err := Decode(json.RawMessage(body), received)
		if ev != nil || !slices.Equal(fieldNames(err), []string{"/"}) {
			t.Errorf("Decode(%s) = %v, %v; want a FieldError on /", body, ev, err)
		}
	}
}

func TestSplitBatch(t *testing.T) {
	one := raw(t, erasureEvent())
	items := func(n int) []byte {
		parts := make([]string, n)
		for i := range parts {
			ev := erasureEvent()
			ev["id"] = fmt.Sprintf("evt-%d", i)
			parts[i] = string(raw(t, ev))
		}
		return []byte("[" + strings.Join(parts, ",") + "]")
	}
	t.Run("single", func(t *testing.T) {
		got, isBatch, err := SplitBatch(append([]byte(" \n\t"), one...))
		if err != nil || isBatch || len(got) != 1 || string(got[0]) != string(one) {
			t.Errorf("SplitBatch = %d items %q, batch %v, err %v; want the one event", len(got), got, isBatch, err)
		}
	})
	t.Run("array", func(t *testing.T) {
		b := items(3)
		got, isBatch, err := SplitBatch(append([]byte("\r\n "), b...))
		if err != nil || !isBatch || len(got) != 3 {
			t.Fatalf("SplitBatch = %d items, batch %v, err %v; want 3 in a batch", len(got), isBatch, err)
		}
		for i, r := range got {
			var env Envelope
			if err := json.Unmarshal(r, &env); err != nil || env.ID != fmt.Sprintf("evt-%d", i) {
				t.Errorf("item %d: id %q (err %v)", i, env.ID, err)
			}
		}
	})
	t.Run("array of one", func(t *testing.T) {
		got, isBatch, err := SplitBatch([]byte("[" + string(one) + "]"))
		if err != nil || !isBatch || len(got) != 1 {
			t.Errorf("SplitBatch = %d items, batch %v, err %v", len(got), isBatch, err)
		}
	})
	t.Run("MaxBatch", func(t *testing.T) {
		got, isBatch, err := SplitBatch(items(MaxBatch))
		if err != nil || !isBatch || len(got) != MaxBatch {
			t.Errorf("SplitBatch = %d items, batch %v, err %v; want %d", len(got), isBatch, err, MaxBatch)
		}
	})
	for _, tc := range []struct {
		name    string
		body    []byte
		isBatch bool
		reason  string
	}{
		{"empty array", []byte(" [ ] "), true, "empty batch"},
		{"too many", items(MaxBatch + 1), true, fmt.Sprintf("batch of %d events; at most %d", MaxBatch+1, MaxBatch)},
		{"broken array", []byte(`[{"id":"a"},`), true, "not a JSON array"},
		{"array of junk", []byte(`[{"id":"a"} {"id":"b"}]`), true, "not a JSON array"},
		{"not JSON", []byte(`{not json`), false, "not valid JSON"},
		{"two objects", []byte(`{"id":"a"}{"id":"b"}`), false, "not valid JSON"},
		{"empty body", nil, false, "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, isBatch, err := SplitBatch(tc.body)
			if got != nil {
				t.Errorf("items %q came with the error", got)
			}
			if isBatch != tc.isBatch {
				t.Errorf("isBatch = %v, want %v", isBatch, tc.isBatch)
			}
			var fe *problem.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v: want a *problem.FieldError", err)
			}
			if fe.Field != "/" || !strings.HasPrefix(fe.Reason, tc.reason) {
				t.Errorf("FieldError %q, want field / with reason %q...", fe.Error(), tc.reason)
			}
		})
	}
}

// exampleSeeds are the profile examples the repository ships.
func exampleSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob("../../../scripts/examples/profile-*.json")
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Fatal("no scripts/examples/profile-*.json")
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestExamplesDecode(t *testing.T) {
	for _, b := range exampleSeeds(t) {
		raws, isBatch, err := SplitBatch(b)
		if err != nil || isBatch || len(raws) != 1 {
			t.Fatalf("SplitBatch: %d, %v, %v", len(raws), isBatch, err)
		}
		// Well after the examples were observed.
		ev, err := Decode(raws[0], time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if ev.Profile == nil || ev.Profile.MemberId != "m-avery-quinn" || len(ev.Profile.Positions) < 2 {
			t.Errorf("profile %v", ev.Profile)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, b := range exampleSeeds(f) {
		f.Add(b)
	}
	f.Add([]byte(raw(f, companyEvent())))
	f.Add([]byte(raw(f, erasureEvent())))
	f.Add([]byte("[" + string(raw(f, profileEvent())) + "," + string(raw(f, erasureEvent())) + "]"))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if !Verify([]string{secret}, body, Sign(secret, body)) {
			t.Fatal("a body's own signature does not verify")
		}
		raws, _, err := SplitBatch(body)
		if err != nil {
			var fe *problem.FieldError
			if !errors.As(err, &fe) || raws != nil {
				t.Fatalf("SplitBatch error %v with %d items", err, len(raws))
			}
			return
		}
		if len(raws) == 0 || len(raws) > MaxBatch {
			t.Fatalf("SplitBatch returned %d items", len(raws))
		}
		for _, r := range raws {
			ev, err := Decode(r, received)
			if err != nil {
				var fe *problem.FieldError
				if ev != nil || !errors.As(err, &fe) {
					t.Fatalf("Decode error %v (%T) with event %v", err, err, ev)
				}
				continue
			}
			set := 0
			var msg proto.Message
			if ev.Profile != nil {
				set++
				msg = ev.Profile
			}
			if ev.Company != nil {
				set++
				msg = ev.Company
			}
			if ev.Erasure != nil {
				set++
				msg = ev.Erasure
			}
			if set != 1 {
				t.Fatalf("%d of profile, company, erasure set", set)
			}
			if !idRE.MatchString(ev.ID) {
				t.Fatalf("accepted id %q", ev.ID)
			}
			if _, err := proto.Marshal(msg); err != nil {
				t.Fatalf("proto.Marshal: %v", err)
			}
		}
	})
}
