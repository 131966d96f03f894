package decide

import (
	"maps"
	"slices"
	"strings"
)

// employer is the account's company and its family: parent, subsidiaries,
// and the companies it absorbed or was absorbed by.
type employer struct {
	nameKey string
	// ids of the companies that are the account's, with how each matched.
	ids map[string]companyMatch
	// familyNames are the name keys of the family's pages (not the
	// account's own): a position typed as "Fabrikam" without its page is
	// at the acquirer all the same, when judging a matched member.
	familyNames map[string]companyMatch
	// domains are the account website's and its companies' pages'.
	domains map[string]bool
}

type companyMatch struct {
	how  string
	conf float64
}

func newEmployer(a Account, companies map[string]Company) employer {
	e := employer{nameKey: CompanyKey(a.Name), ids: map[string]companyMatch{}, familyNames: map[string]companyMatch{}, domains: map[string]bool{}}
	domain := Domain(a.Website)
	if domain != "" {
		e.domains[domain] = true
	}
	for id, co := range companies {
		switch {
		case a.CompanyID != "" && id == a.CompanyID:
			e.ids[id] = companyMatch{"explicit", 1}
		case domain != "" && slices.ContainsFunc(co.Domains, func(d string) bool { return strings.TrimPrefix(d, "www.") == domain }):
			e.ids[id] = companyMatch{"domain", 0.98}
		case e.nameKey != "" && CompanyKey(co.Name) == e.nameKey:
			e.ids[id] = companyMatch{"name", 0.9}
		}
	}
	if a.CompanyID != "" {
		e.ids[a.CompanyID] = companyMatch{"explicit", 1}
	}
	// Family: the parents up the chain and the subsidiaries down it (a group
	// and its subsidiaries' subsidiaries), and one step of acquisition either
	// way: the successor, or the company absorbed. Not sideways: a sister
	// company under the same parent is another employer.
	direct := maps.Clone(e.ids)
	family := func(id string, m companyMatch) {
		if _, ok := e.ids[id]; !ok && id != "" {
			e.ids[id] = companyMatch{"family", min(m.conf, 0.9)}
		}
	}
	for id, m := range direct {
		family(companies[id].Successor, m)
		for up, n := companies[id].Parent, 0; up != "" && n < maxFamilyDepth; up, n = companies[up].Parent, n+1 {
			family(up, m)
		}
		down := map[string]bool{id: true}
		for n := 0; n < maxFamilyDepth; n++ {
			for otherID, co := range companies {
				if down[co.Parent] || n == 0 && co.Successor == id {
					family(otherID, m)
					down[otherID] = true
				}
			}
		}
	}
	for id, m := range e.ids {
		for _, d := range companies[id].Domains {
			if d := Domain(d); d != "" {
				e.domains[d] = true
			}
		}
		if key := CompanyKey(companies[id].Name); m.how == "family" && key != "" && key != e.nameKey {
			e.familyNames[key] = companyMatch{"family_name", familyNameConfidence}
		}
	}
	return e
}

// familyNameConfidence is below any threshold worth having with an email
// match (0.95 × 0.8): a family page known only by name keeps a member at
// the company but cannot flag on its own.
const familyNameConfidence = 0.8

// judging tells whether position p is at the employer for a member already
// matched: as match, and also by a family page's name.
func (e employer) judging(p Position) (string, float64, string) {
	if how, conf, id := e.match(p); how != "" {
		return how, conf, id
	}
	if m, ok := e.familyNames[CompanyKey(p.CompanyName)]; ok && p.CompanyID == "" {
		return m.how, m.conf, ""
	}
	return "", 0, ""
}

// maxFamilyDepth bounds the walk up and down a company tree (and cycles).
const maxFamilyDepth = 4

// match tells whether position p is at the employer, how, how sure, and
// which company id it matched.
func (e employer) match(p Position) (string, float64, string) {
	if m, ok := e.ids[p.CompanyID]; ok && p.CompanyID != "" {
		return m.how, m.conf, p.CompanyID
	}
	if key := CompanyKey(p.CompanyName); key != "" && key == e.nameKey {
		return "name", 0.9, p.CompanyID
	}
	return "", 0, ""
}

// ProfileURLKey is the comparable form of a profile URL:
// "https://www.linkedin.com/in/Avery-Quinn/?x=1" → "linkedin.com/in/avery-quinn".
func ProfileURLKey(u string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	u = strings.TrimPrefix(u, "www.")
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return strings.TrimRight(u, "/")
}

// profileSlug is the "/in/name" of a profile URL key, whatever the host
// ("uk.linkedin.com/in/x" names the same profile as "linkedin.com/in/x"),
// or "" when the key has none (an empty or junk value).
func profileSlug(key string) string {
	_, rest, ok := strings.Cut(key, "/in/")
	slug, _, _ := strings.Cut(rest, "/")
	if !ok || slug == "" {
		return ""
	}
	return "/in/" + slug
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func cmpOr(a, b *YearMonth) *YearMonth {
	if a != nil {
		return a
	}
	return b
}

func filter(ps []Position, keep func(Position) bool) []Position {
	var out []Position
	for _, p := range ps {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// latest returns the position whose date (by) is latest; undated sort first.
func latest(ps []Position, by func(Position) *YearMonth) *Position {
	best := ps[0]
	for _, p := range ps[1:] {
		b, c := by(best), by(p)
		if b == nil || (c != nil && b.before(*c)) {
			best = p
		}
	}
	return &best
}

func round3(f float64) float64 { return float64(int(f*1000+0.5)) / 1000 }
