package decide

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// fold lower-cases s, removes accents and turns punctuation into spaces, so
// that "Société Générale, S.A." and "societe generale sa" compare equal.
func fold(s string) string {
	out := s
	// ASCII has no accents to remove; the transform allocates a few KB
	// per call, and names and companies are folded at every evaluation.
	if !isASCII(s) {
		t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
		var err error
		if out, _, err = transform.String(t, s); err != nil {
			out = s
		}
	}
	var b strings.Builder
	b.Grow(len(out))
	space := true
	for _, r := range strings.ToLower(out) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
			space = false
			continue
		}
		if r == '&' || r == '\'' || r == '’' {
			continue // "AT&T" = "att", "O'Brien" = "obrien"
		}
		if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	return strings.TrimSpace(b.String())
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// legalSuffixes are legal-form words dropped from the end of company names.
var legalSuffixes = map[string]bool{
	"inc": true, "incorporated": true, "corp": true, "corporation": true, "co": true, "company": true,
	"ltd": true, "limited": true, "llc": true, "llp": true, "lp": true, "plc": true,
	"gmbh": true, "ag": true, "kg": true, "se": true, "sas": true, "sarl": true, "sa": true,
	"bv": true, "nv": true, "srl": true, "spa": true, "oy": true, "ab": true, "as": true, "aps": true,
	"kk": true, "pty": true, "pte": true, "sl": true, "group": true, "holding": true, "holdings": true,
}

// CompanyKey is the comparable form of a company name: folded, with legal
// suffixes ("Inc", "GmbH", "S.A.") removed from the end.
func CompanyKey(name string) string {
	words := joinInitials(strings.Fields(fold(name)))
	for len(words) > 1 && legalSuffixes[words[len(words)-1]] {
		words = words[:len(words)-1]
	}
	return strings.Join(words, " ")
}

// NameKey is the comparable form of a person's name.
func NameKey(first, last string) string {
	return fold(first + " " + last)
}

// Domain returns the registrable domain of a website ("https://www.shop.contoso.co.uk/x"
// → "contoso.co.uk"), or "" when there is none.
func Domain(website string) string {
	w := strings.TrimSpace(strings.ToLower(website))
	if w == "" {
		return ""
	}
	if !strings.Contains(w, "://") {
		w = "http://" + w
	}
	u, err := url.Parse(w)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(u.Hostname())
	if err != nil || sharedHosts[d] {
		return ""
	}
	return d
}

// sharedHosts host pages of many businesses: "facebook.com/contosobakery"
// says nothing about which company the account is.
var sharedHosts = map[string]bool{
	"facebook.com": true, "instagram.com": true, "linkedin.com": true, "twitter.com": true, "x.com": true,
	"google.com": true, "youtube.com": true, "yelp.com": true, "wix.com": true, "wixsite.com": true,
	"wordpress.com": true, "blogspot.com": true, "squarespace.com": true, "weebly.com": true,
	"godaddysites.com": true, "business.site": true, "tiktok.com": true, "amazon.com": true,
}

// joinInitials merges runs of one-letter words, the remains of dotted
// abbreviations: "s p a" → "spa", "b v" → "bv".
func joinInitials(words []string) []string {
	out := words[:0:0]
	for i := 0; i < len(words); i++ {
		w := words[i]
		for len([]rune(words[i])) == 1 && i+1 < len(words) && len([]rune(words[i+1])) == 1 {
			w += words[i+1]
			i++
		}
		out = append(out, w)
	}
	return out
}

// EmailDomain returns the registrable domain of an email address
// ("Ada@Mail.Contoso.co.uk" → "contoso.co.uk"), or "" when it has none.
func EmailDomain(address string) string {
	_, host, ok := strings.Cut(strings.TrimSpace(address), "@")
	if !ok || host == "" || strings.ContainsAny(host, "/?#@") {
		return ""
	}
	return Domain(host)
}
