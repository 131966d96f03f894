package demoorg

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// The profile feed's events, as a source posts them to /webhooks/profile
// (see the README's profile event format). Dates are relative to now: a
// leaver left two months ago, a stayer joined four years ago.

const feedSource = "demo-feed"

type yearMonth struct {
	Year  int `json:"year"`
	Month int `json:"month"`
}

func monthsBefore(now time.Time, n int) yearMonth {
	t := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -n, 0)
	return yearMonth{t.Year(), int(t.Month())}
}

type position struct {
	CompanyID   string     `json:"companyId"`
	CompanyName string     `json:"companyName"`
	Title       string     `json:"title"`
	Start       yearMonth  `json:"start"`
	End         *yearMonth `json:"end,omitempty"`
	Current     bool       `json:"current"`
}

type event struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Source     string `json:"source"`
	ObservedAt string `json:"observedAt"`
	Data       any    `json:"data"`
}

type profileData struct {
	MemberID    string     `json:"memberId"`
	FirstName   string     `json:"firstName"`
	LastName    string     `json:"lastName"`
	Country     string     `json:"country"`
	EmailSHA256 []string   `json:"emailSha256,omitempty"`
	Positions   []position `json:"positions"`
}

type companyData struct {
	CompanyID       string   `json:"companyId"`
	Name            string   `json:"name"`
	Domains         []string `json:"domains"`
	ParentCompanyID string   `json:"parentCompanyId,omitempty"`
}

// companyEvents describe every company page of the demo. Their ids are
// fresh each run (a duplicate id is stored once), their content the same.
func companyEvents(run string, now time.Time) []event {
	var out []event
	for i, c := range companies {
		out = append(out, event{ID: fmt.Sprintf("demo-%s-company-%02d", run, i), Type: "company.changed", Source: feedSource,
			ObservedAt: stamp(now), Data: companyData{CompanyID: c.id, Name: c.name, Domains: []string{c.domain}, ParentCompanyID: c.parent}})
	}
	return out
}

// profileEvents say where each person of the cast works, or, for a
// namesake, where someone of the same name does. Members are new each run.
func profileEvents(run string, now time.Time) []event {
	var out []event
	for i, p := range cast {
		if p.kind == CaseNoProfile {
			continue
		}
		home := accountByKey(p.account).company
		data := profileData{MemberID: memberID(run, p), FirstName: p.first, LastName: p.last, Country: "GB"}
		if p.kind != CaseNamesake {
			data.EmailSHA256 = []string{emailHash(p.email(run))}
		} else {
			home = p.from // the namesake never worked at the contact's company
		}
		joined, left := monthsBefore(now, 72), monthsBefore(now, 2)
		was := position{CompanyID: home, CompanyName: companyByID(home).name, Title: p.title, Start: joined}
		switch p.kind {
		case CaseStayer:
			was.Start, was.Current = monthsBefore(now, 48), true
			data.Positions = []position{was}
		default:
			was.End = &left
			if p.to != "" {
				data.Positions = append(data.Positions, position{CompanyID: p.to, CompanyName: companyByID(p.to).name,
					Title: p.toTitle, Start: left, Current: true})
			}
			data.Positions = append(data.Positions, was)
		}
		out = append(out, event{ID: fmt.Sprintf("demo-%s-profile-%02d", run, i), Type: "profile.changed", Source: feedSource,
			ObservedAt: stamp(now), Data: data})
	}
	return out
}

func memberID(run string, p person) string {
	return "m-" + run + "-" + strings.ToLower(p.first+"-"+p.last)
}

// emailHash is how a source names an address: hex SHA-256 of the
// trimmed, lower-cased address.
func emailHash(addr string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(addr))))
	return hex.EncodeToString(sum[:])
}

func stamp(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }
