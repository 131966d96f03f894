package decide_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// The labelled scenarios of testdata/scenarios.json: realistic contacts,
// accounts, profiles and company pages, each with the value a careful human
// would want. The suite reports precision and recall of Not at Company and
// the reversal rate, and fails below the gates.

var (
	scenarioNow      = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	scenarioObserved = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
)

const (
	scenarioThreshold = 0.8
	scenarioMaxAge    = 548 * 24 * time.Hour
	minPrecision      = 0.99
	minRecall         = 0.95
	minScenarios      = 60
)

type scenario struct {
	Name    string `json:"name"`
	Why     string `json:"why"`
	Contact struct {
		First      string   `json:"first"`
		Last       string   `json:"last"`
		Title      string   `json:"title"`
		Country    string   `json:"country"`
		Emails     []string `json:"emails"`
		MemberID   string   `json:"member_id"`
		ProfileURL string   `json:"profile_url"`
		Active     *bool    `json:"active"`
	} `json:"contact"`
	Account *struct {
		Name      string `json:"name"`
		Website   string `json:"website"`
		CompanyID string `json:"company_id"`
	} `json:"account"`
	InScope *bool `json:"in_scope"`
	Members []struct {
		ID         string   `json:"id"`
		Source     string   `json:"source"`
		Observed   string   `json:"observed"`
		First      string   `json:"first"`
		Last       string   `json:"last"`
		ProfileURL string   `json:"profile_url"`
		Country    string   `json:"country"`
		Emails     []string `json:"emails"`
		Positions  []struct {
			CompanyID   string `json:"cid"`
			CompanyName string `json:"cn"`
			Title       string `json:"t"`
			Start       string `json:"s"`
			End         string `json:"e"`
			Current     bool   `json:"c"`
		} `json:"positions"`
	} `json:"members"`
	Companies []decide.Company `json:"companies"`
	Expected  *int             `json:"expected"`
	Reason    string           `json:"reason"`
	// KnownIssue: the code disagrees with the label and the rule was left
	// as it is (see the text). Reported, not gated.
	KnownIssue string `json:"known_issue"`
}

func loadScenarios(t *testing.T) []scenario {
	t.Helper()
	data, err := os.ReadFile("testdata/scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var out []scenario
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("testdata/scenarios.json: %v", err)
	}
	return out
}

func hashEmail(e string) string {
	h := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(e))))
	return hex.EncodeToString(h[:])
}

func hashEmails(es []string) []string {
	var out []string
	for _, e := range es {
		out = append(out, hashEmail(e))
	}
	return out
}

// parseYM reads "2024-09" or "2024" (month unknown); "" is no date.
func parseYM(s string) (*decide.YearMonth, error) {
	if s == "" {
		return nil, nil
	}
	y, m, hasMonth := strings.Cut(s, "-")
	year, err := strconv.Atoi(y)
	if err != nil {
		return nil, fmt.Errorf("date %q: %w", s, err)
	}
	ym := &decide.YearMonth{Year: year}
	if hasMonth {
		if ym.Month, err = strconv.Atoi(m); err != nil || ym.Month < 1 || ym.Month > 12 {
			return nil, fmt.Errorf("date %q: bad month", s)
		}
	}
	return ym, nil
}

func (s scenario) input() (decide.Input, error) {
	c := s.Contact
	in := decide.Input{
		Contact: decide.Contact{
			ID: "contact-" + s.Name, FirstName: c.First, LastName: c.Last, Title: c.Title, Country: c.Country,
			EmailHashes: hashEmails(c.Emails), MemberID: c.MemberID, ProfileURL: c.ProfileURL,
			Active: c.Active == nil || *c.Active,
		},
		InScope:       s.InScope == nil || *s.InScope,
		Threshold:     scenarioThreshold,
		Now:           scenarioNow,
		MaxProfileAge: scenarioMaxAge,
	}
	if a := s.Account; a != nil {
		in.Account = &decide.Account{ID: "account-" + s.Name, Name: a.Name, Website: a.Website, CompanyID: a.CompanyID}
		in.Contact.AccountID = in.Account.ID
	}
	for i, m := range s.Members {
		dm := decide.Member{
			ID: m.ID, Source: cmpOr(m.Source, "feed"), ObservedAt: scenarioObserved,
			FirstName: m.First, LastName: m.Last, ProfileURL: m.ProfileURL, Country: m.Country,
			EmailHashes: hashEmails(m.Emails),
		}
		if dm.ID == "" {
			dm.ID = fmt.Sprintf("m%d", i+1)
		}
		if m.Observed != "" {
			at, err := time.Parse(time.DateOnly, m.Observed)
			if err != nil {
				return in, fmt.Errorf("member %s observed: %w", dm.ID, err)
			}
			dm.ObservedAt = at
		}
		for _, p := range m.Positions {
			start, err := parseYM(p.Start)
			if err != nil {
				return in, err
			}
			end, err := parseYM(p.End)
			if err != nil {
				return in, err
			}
			dm.Positions = append(dm.Positions, decide.Position{
				CompanyID: p.CompanyID, CompanyName: p.CompanyName, Title: p.Title, Start: start, End: end, Current: p.Current,
			})
		}
		in.Members = append(in.Members, dm)
	}
	if len(s.Companies) > 0 {
		in.Companies = map[string]decide.Company{}
		for _, co := range s.Companies {
			in.Companies[co.ID] = co
		}
	}
	return in, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// reversal is in with the flagged member (every candidate when none
// matched) back at the account's company: a new current position there, on a
// profile observed later.
func reversal(in decide.Input, r decide.Result) decide.Input {
	if in.Account == nil {
		return in
	}
	back := decide.Position{
		CompanyID: in.Account.CompanyID, CompanyName: in.Account.Name, Title: in.Contact.Title,
		Start: &decide.YearMonth{Year: scenarioNow.Year(), Month: int(scenarioNow.Month())}, Current: true,
	}
	members := slices.Clone(in.Members)
	for i, m := range members {
		if m.ID == r.Evidence.MemberID || r.Evidence.MemberID == "" {
			m.Positions = append(slices.Clone(m.Positions), back)
			m.ObservedAt = m.ObservedAt.Add(30 * 24 * time.Hour)
			members[i] = m
		}
	}
	in.Members = members
	return in
}

func describe(r decide.Result) string {
	return fmt.Sprintf("value=%d reason=%s confidence=%.3f member=%s/%s company=%s/%s",
		r.Value, r.Reason, r.Confidence, r.Evidence.MemberID, r.Evidence.MemberMatch, r.Evidence.CompanyID, r.Evidence.CompanyMatch)
}

var knownReasons = []string{
	decide.ReasonLeft, decide.ReasonStillThere, decide.ReasonNoAccount, decide.ReasonUnmatched,
	decide.ReasonAmbiguous, decide.ReasonNoPosition, decide.ReasonTooLittle, decide.ReasonStale,
	decide.ReasonBelowThresh, decide.ReasonContactGone, decide.ReasonOutOfScope,
}

func ratio(num, den int) float64 {
	if den == 0 {
		return 1
	}
	return float64(num) / float64(den)
}

func TestScenarios(t *testing.T) {
	scenarios := loadScenarios(t)
	if len(scenarios) < minScenarios {
		t.Errorf("%d scenarios, want at least %d", len(scenarios), minScenarios)
	}
	var (
		tp, fp, fn, tn       int
		flagged, reversedOK  int // labelled Not at Company; cleared when back
		misclassified        []string
		reasonMismatch       []string
		reversalFailures     []string
		knownIssues, nowSame []string
		seen                 = map[string]bool{}
	)
	for _, s := range scenarios {
		switch {
		case s.Name == "" || s.Why == "":
			t.Errorf("scenario %q: want a name and a why", s.Name)
		case seen[s.Name]:
			t.Errorf("scenario %q: duplicate name", s.Name)
		case s.Expected == nil || *s.Expected != decide.NoFeedback && *s.Expected != decide.NotAtCompany:
			t.Errorf("scenario %q: want expected 0 or 1", s.Name)
			continue
		case s.Reason != "" && !slices.Contains(knownReasons, s.Reason):
			t.Errorf("scenario %q: unknown reason %q", s.Name, s.Reason)
		}
		seen[s.Name] = true
		in, err := s.input()
		if err != nil {
			t.Errorf("scenario %q: %v", s.Name, err)
			continue
		}
		r := decide.Evaluate(in)
		got := r.Value == decide.NotAtCompany
		want := *s.Expected == decide.NotAtCompany
		line := fmt.Sprintf("%s: expected %d, got %s (why: %s)", s.Name, *s.Expected, describe(r), s.Why)
		if s.KnownIssue != "" {
			if got != want {
				knownIssues = append(knownIssues, line+" [known issue: "+s.KnownIssue+"]")
			} else {
				nowSame = append(nowSame, s.Name)
			}
			continue // reported, not gated
		}
		switch {
		case got && want:
			tp++
		case got && !want:
			fp++
		case !got && want:
			fn++
		default:
			tn++
		}
		if got != want {
			misclassified = append(misclassified, line)
		} else if s.Reason != "" && r.Reason != s.Reason {
			reasonMismatch = append(reasonMismatch, fmt.Sprintf("%s: reason %q, want %q (%s)", s.Name, r.Reason, s.Reason, describe(r)))
		}
		if want {
			// The same case with the member back at the company must clear.
			flagged++
			rr := decide.Evaluate(reversal(in, r))
			if rr.Value == decide.NoFeedback && (!got || rr.Reason == decide.ReasonStillThere) {
				reversedOK++
			} else {
				reversalFailures = append(reversalFailures, fmt.Sprintf("%s: back at the company, got %s", s.Name, describe(rr)))
			}
		}
	}
	precision, recall := ratio(tp, tp+fp), ratio(tp, tp+fn)
	t.Logf("scenarios: %d (%d labelled Not at Company, %d No Feedback, %d known issues not gated)",
		len(scenarios), tp+fn, tn+fp, len(knownIssues)+len(nowSame))
	t.Logf("Not at Company: TP=%d FP=%d FN=%d TN=%d precision=%.4f recall=%.4f", tp, fp, fn, tn, precision, recall)
	t.Logf("reversal: %d/%d cases labelled Not at Company clear when the member is back at the company (rate %.4f)",
		reversedOK, flagged, ratio(reversedOK, flagged))
	for _, l := range knownIssues {
		t.Logf("KNOWN ISSUE (label kept, code left) %s", l)
	}
	for _, n := range nowSame {
		t.Logf("known issue %q: the code now agrees with the label; drop its known_issue", n)
	}
	gated := precision < minPrecision || recall < minRecall || len(reversalFailures) > 0
	for _, l := range misclassified {
		if gated {
			t.Errorf("MISCLASSIFIED %s", l)
		} else {
			t.Logf("MISCLASSIFIED %s", l)
		}
	}
	for _, l := range reasonMismatch {
		t.Errorf("REASON %s", l)
	}
	for _, l := range reversalFailures {
		t.Errorf("REVERSAL %s", l)
	}
	if precision < minPrecision {
		t.Errorf("precision %.4f < %.2f", precision, minPrecision)
	}
	if recall < minRecall {
		t.Errorf("recall %.4f < %.2f", recall, minRecall)
	}
}
