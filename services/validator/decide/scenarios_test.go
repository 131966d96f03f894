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
// would want, a kind and a one-line why. The suite reports precision and
// recall of Not at Company, the reversal and Ignore rates, overall and per
// kind, names every known issue, and fails below the gates.
//
// The file's dates are written against suiteEpoch; the suite runs them on
// a test clock in the current year, every date moved by the same whole
// number of years, so that nothing in it stops flagging as time passes.

var suiteEpoch = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

// suiteClock is the test clock: suiteEpoch moved to the current year.
type suiteClock struct{ years int }

func newSuiteClock(now time.Time) suiteClock {
	return suiteClock{years: now.Year() - suiteEpoch.Year()}
}

func (c suiteClock) now() time.Time { return suiteEpoch.AddDate(c.years, 0, 0) }

// observed is when profiles were observed unless a scenario says: a month
// before the test clock.
func (c suiteClock) observed() time.Time { return c.now().AddDate(0, -1, 0) }

func (c suiteClock) date(s string) (time.Time, error) {
	at, err := time.Parse(time.DateOnly, s)
	return at.AddDate(c.years, 0, 0), err
}

const (
	scenarioThreshold = 0.8
	scenarioMaxAge    = 548 * 24 * time.Hour
	minPrecision      = 1.0
	minRecall         = 0.97
	minScenarios      = 200
)

// scenarioKinds are the kinds a scenario may be of; each is reported.
var scenarioKinds = []string{
	"email_and_explicit", "name_normalization", "company_match", "company_family", "acquisitions_renames",
	"job_history", "month_boundary", "staleness_scope", "name_only_leaver", "name_only_corroborated",
	"namesakes", "rare_common_names", "multilingual_titles", "email_domain", "two_sources",
	"agreeing_duplicates", "tenure", "ignore",
}

type scenario struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
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
		Created    string   `json:"created"`
		LinkedIn   int      `json:"linkedin"`
		Flag       int      `json:"flag"`
	} `json:"contact"`
	Account *struct {
		Name      string `json:"name"`
		Website   string `json:"website"`
		CompanyID string `json:"company_id"`
	} `json:"account"`
	InScope *bool `json:"in_scope"`
	// Names are the name counts the evaluate path would learn.
	Names *struct {
		Contacts   int `json:"contacts"`
		OnAccount  int `json:"on_account"`
		Members    int `json:"members"`
		AtCompany  int `json:"at_company"`
		Population int `json:"population"`
	} `json:"names"`
	// Reflag and Ignored: the organization lets new evidence re-flag, and
	// the user set Ignore on that day, before any decision of ours.
	Reflag  bool   `json:"reflag"`
	Ignored string `json:"ignored"`
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
			Current     *bool  `json:"c"`
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

// yearMonth reads "2024-09" or "2024" (month unknown) on the test clock;
// "" is no date.
func (c suiteClock) yearMonth(s string) (*decide.YearMonth, error) {
	if s == "" {
		return nil, nil
	}
	y, m, hasMonth := strings.Cut(s, "-")
	year, err := strconv.Atoi(y)
	if err != nil {
		return nil, fmt.Errorf("date %q: %w", s, err)
	}
	ym := &decide.YearMonth{Year: year + c.years}
	if hasMonth {
		if ym.Month, err = strconv.Atoi(m); err != nil || ym.Month < 1 || ym.Month > 12 {
			return nil, fmt.Errorf("date %q: bad month", s)
		}
	}
	return ym, nil
}

func (s scenario) input(clock suiteClock) (decide.Input, error) {
	c := s.Contact
	in := decide.Input{
		Contact: decide.Contact{
			ID: "contact-" + s.Name, FirstName: c.First, LastName: c.Last, Title: c.Title, Country: c.Country,
			EmailHashes: hashEmails(c.Emails), MemberID: c.MemberID, ProfileURL: c.ProfileURL,
			Active: c.Active == nil || *c.Active, LinkedInStatus: c.LinkedIn, Flag: c.Flag,
		},
		InScope:           s.InScope == nil || *s.InScope,
		Threshold:         scenarioThreshold,
		Now:               clock.now(),
		MaxProfileAge:     scenarioMaxAge,
		ReflagAfterIgnore: s.Reflag,
	}
	for _, e := range c.Emails {
		if d := decide.EmailDomain(e); d != "" {
			in.Contact.EmailDomains = append(in.Contact.EmailDomains, d)
		}
	}
	var err error
	if c.Created != "" {
		if in.Contact.CreatedOn, err = clock.date(c.Created); err != nil {
			return in, fmt.Errorf("contact created: %w", err)
		}
	}
	if s.Ignored != "" {
		if in.IgnoredAt, err = clock.date(s.Ignored); err != nil {
			return in, fmt.Errorf("ignored: %w", err)
		}
	}
	if n := s.Names; n != nil {
		in.Names = &decide.NameStats{Contacts: n.Contacts, ContactsOnAccount: n.OnAccount, Members: n.Members,
			MembersAtCompany: n.AtCompany, Population: n.Population}
	}
	if a := s.Account; a != nil {
		in.Account = &decide.Account{ID: "account-" + s.Name, Name: a.Name, Website: a.Website, CompanyID: a.CompanyID}
		in.Contact.AccountID = in.Account.ID
	}
	for i, m := range s.Members {
		dm := decide.Member{
			ID: m.ID, Source: cmpOr(m.Source, "feed"), ObservedAt: clock.observed(),
			FirstName: m.First, LastName: m.Last, ProfileURL: m.ProfileURL, Country: m.Country,
			EmailHashes: hashEmails(m.Emails),
		}
		if dm.ID == "" {
			dm.ID = fmt.Sprintf("m%d", i+1)
		}
		if m.Observed != "" {
			at, err := clock.date(m.Observed)
			if err != nil {
				return in, fmt.Errorf("member %s observed: %w", dm.ID, err)
			}
			dm.ObservedAt = at
		}
		for _, p := range m.Positions {
			start, err := clock.yearMonth(p.Start)
			if err != nil {
				return in, err
			}
			end, err := clock.yearMonth(p.End)
			if err != nil {
				return in, err
			}
			dm.Positions = append(dm.Positions, decide.Position{
				CompanyID: p.CompanyID, CompanyName: p.CompanyName, Title: p.Title, Start: start, End: end,
				Current: p.Current != nil && *p.Current, Past: p.Current != nil && !*p.Current,
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
	now := in.Now
	if in.Contact.Flag == decide.Ignore && r.Value == decide.NotAtCompany {
		// The re-flag replaced the user's Ignore in the column.
		in.Contact.Flag = decide.NotAtCompany
	}
	if in.Account == nil {
		return in
	}
	back := decide.Position{
		CompanyID: in.Account.CompanyID, CompanyName: in.Account.Name, Title: in.Contact.Title,
		Start: &decide.YearMonth{Year: now.Year(), Month: int(now.Month())}, Current: true,
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
