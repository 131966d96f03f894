package decide

import (
	"fmt"
	"math"
	"time"
)

// nameFeatures compares a contact with a member of the same name who has a
// position at the employer; namesakes is how many such members there are.
func nameFeatures(in Input, e employer, m *Member, namesakes int) []Feature {
	c := in.Contact
	fs := []Feature{
		{Name: FeaturePrior, Level: "1 in 1500", Weight: round2(math.Log2(priorOdds))},
		nameFeature(in.Names),
	}
	if level := titleLevel(c.Title, e, m); level != TitleMissing {
		fs = append(fs, feature(FeatureTitle, level, titleWeights[level]))
	}
	if level := countryLevel(c.Country, m.Country); level != "" {
		fs = append(fs, feature(FeatureCountry, level, countryWeights[level]))
	}
	if level := tenureLevel(c.CreatedOn, in.Now, e, m); level != "" {
		fs = append(fs, feature(FeatureTenure, level, tenureWeights[level]))
	}
	if level := emailDomainLevel(c.EmailDomains, e, m, in.Companies); level != "" {
		fs = append(fs, feature(FeatureEmailDomain, level, emailDomainWeights[level]))
	}
	if f, ok := uniqueness(in.Names, namesakes); ok {
		fs = append(fs, f)
	}
	return fs
}

// titleLevel is the best comparison of the contact's title with the
// member's titles at the employer.
func titleLevel(title string, e employer, m *Member) string {
	best := TitleMissing
	for _, p := range m.Positions {
		if how, _, _ := e.match(p); how == "" {
			continue
		}
		level := CompareTitles(title, p.Title)
		if level != TitleMissing && (best == TitleMissing || titleWeights[level].bits() > titleWeights[best].bits()) {
			best = level
		}
	}
	return best
}

// countryLevel compares two countries however each is written ("UK",
// "United Kingdom", "GB"); "" when either is missing.
func countryLevel(a, b string) string {
	ka, kb := countryKey(a), countryKey(b)
	switch {
	case ka == "" || kb == "":
		return ""
	case ka == kb:
		return "same"
	}
	return "different"
}

// tenureLevel places the contact's creation in the CRM against the
// member's time at the employer: inside it (3 months' grace before the
// start, 12 after the end), a year or more after it, or a year or more
// before it; "" when a date is missing or it falls in between.
func tenureLevel(created, now time.Time, e employer, m *Member) string {
	if created.IsZero() {
		return ""
	}
	var start, end *YearMonth
	current := false
	for _, p := range m.Positions {
		if how, _, _ := e.match(p); how == "" {
			continue
		}
		if p.Start != nil && (start == nil || p.Start.before(*start)) {
			start = p.Start
		}
		current = current || p.IsCurrent()
		if p.End != nil && (end == nil || end.before(*p.End)) {
			end = p.End
		}
	}
	if start == nil {
		return ""
	}
	at := months(YearMonth{Year: created.Year(), Month: int(created.Month())})
	from := months(*start)
	var to int
	switch {
	case current && !now.IsZero():
		to = months(YearMonth{Year: now.Year(), Month: int(now.Month())})
	case current:
		to = at // there now: no end to be after
	case end != nil:
		to = months(*end)
	default:
		return "" // ended at an unknown time
	}
	switch {
	case at >= from-3 && at <= to+12:
		return "inside"
	case at > to+12:
		return "after"
	case at < from-12:
		return "before"
	}
	return ""
}

// months counts months since year 0; an unknown month counts as June, the
// middle of the year.
func months(ym YearMonth) int {
	m := ym.Month
	if m == 0 {
		m = 6
	}
	return ym.Year*12 + m - 1
}

// emailDomainLevel: the contact has an address at the member's new
// company, at the employer, or at another company ("" for none, or only
// personal addresses).
func emailDomainLevel(domains []string, e employer, m *Member, companies map[string]Company) string {
	newCompany := map[string]bool{}
	for _, p := range m.Positions {
		if how, _, _ := e.match(p); how != "" || !p.IsCurrent() {
			continue
		}
		for _, d := range companies[p.CompanyID].Domains {
			newCompany[Domain(d)] = true
		}
	}
	level := ""
	for _, d := range domains {
		switch {
		case newCompany[d]:
			return "new_company"
		case e.domains[d]:
			level = "employer"
		case level == "" && !personalMail[d]:
			level = "other_company"
		}
	}
	return level
}

// personalMail are mail providers' domains: an address there says nothing
// about an employer.
var personalMail = map[string]bool{
	"gmail.com": true, "googlemail.com": true, "outlook.com": true, "hotmail.com": true, "live.com": true,
	"msn.com": true, "yahoo.com": true, "ymail.com": true, "icloud.com": true, "me.com": true, "aol.com": true,
	"proton.me": true, "protonmail.com": true, "gmx.de": true, "gmx.net": true, "web.de": true, "t-online.de": true,
	"orange.fr": true, "free.fr": true, "laposte.net": true, "sfr.fr": true, "libero.it": true, "mail.ru": true,
	"yandex.ru": true, "qq.com": true, "163.com": true, "126.com": true, "naver.com": true, "hotmail.co.uk": true,
	"yahoo.co.uk": true, "btinternet.com": true, "comcast.net": true, "hey.com": true, "fastmail.com": true,
}

// otherContactBits: another contact of the name on the account may be the
// member as well as this one, and nothing here can compare them; beyond
// the 1/n share, a flag then needs 2^6 times more evidence.
const otherContactBits = 6

// uniqueness weighs how many contacts on the account and members at the
// company share the name, when the counts are known: the members are the
// namesakes among the candidates, or the count of those who held a
// position at the company when it knows more.
func uniqueness(stats *NameStats, namesakes int) (Feature, bool) {
	members := namesakes
	if stats != nil {
		members = max(members, stats.MembersAtCompany)
	}
	switch {
	case stats != nil && stats.ContactsOnAccount > 1:
		n := stats.ContactsOnAccount
		return Feature{Name: FeatureUniqueness, Level: fmt.Sprintf("%d contacts of the name on the account", n), Weight: round2(-math.Log2(float64(n)) - otherContactBits)}, true
	case members > 1:
		return Feature{Name: FeatureUniqueness, Level: fmt.Sprintf("%d members of the name at the company", members), Weight: 0}, true
	case stats != nil && stats.ContactsOnAccount == 1:
		return feature(FeatureUniqueness, "one contact and one member of the name", uniqueWeight), true
	}
	return Feature{}, false
}

// countryKey is a comparable form of a country: an ISO code for the names
// and codes CRMs commonly hold, else the folded text.
func countryKey(s string) string {
	k := fold(s)
	if code, ok := countryAliases[k]; ok {
		return code
	}
	return k
}

var countryAliases = map[string]string{
	"uk": "gb", "united kingdom": "gb", "great britain": "gb", "england": "gb", "scotland": "gb", "wales": "gb",
	"us": "us", "usa": "us", "united states": "us", "united states of america": "us", "u s a": "us", "u s": "us",
	"germany": "de", "deutschland": "de", "france": "fr", "spain": "es", "espana": "es", "italy": "it", "italia": "it",
	"netherlands": "nl", "the netherlands": "nl", "holland": "nl", "nederland": "nl", "switzerland": "ch",
	"schweiz": "ch", "suisse": "ch", "svizzera": "ch", "austria": "at", "osterreich": "at", "belgium": "be",
	"belgique": "be", "belgie": "be", "sweden": "se", "sverige": "se", "norway": "no", "norge": "no", "denmark": "dk",
	"danmark": "dk", "finland": "fi", "suomi": "fi", "ireland": "ie", "portugal": "pt", "poland": "pl", "polska": "pl",
	"canada": "ca", "australia": "au", "new zealand": "nz", "india": "in", "china": "cn", "japan": "jp",
	"brazil": "br", "brasil": "br", "mexico": "mx", "singapore": "sg", "south africa": "za",
	"united arab emirates": "ae", "uae": "ae",
}
