package decide

import (
	"slices"
	"strings"
)

// Title similarity, beyond equality: CRM titles and profile titles name the
// same job in different words ("Head of Procurement", "Einkaufsleiter",
// "Responsable des achats"), abbreviations ("Sr. Mgr") and word orders
// ("Manager, Procurement"). A title is read as a set of content words, the
// functions it names and its level; two titles compare at one of the levels
// below.

// Title comparison levels, from the strongest.
const (
	TitleExact    = "exact"     // the same words once folded, expanded and reordered
	TitleSameRole = "same_role" // the same function at the same level
	TitleFunction = "function"  // the same function (or most words) at another level
	TitleDiffers  = "different" // nothing in common
	TitleMissing  = ""          // one side has no title: no evidence
)

// titleAbbreviations expand the short forms titles are written with.
var titleAbbreviations = map[string][]string{
	"sr": {"senior"}, "snr": {"senior"}, "jr": {"junior"}, "mgr": {"manager"}, "mngr": {"manager"},
	"dir": {"director"}, "vp": {"vice", "president"}, "svp": {"senior", "vice", "president"},
	"evp": {"executive", "vice", "president"}, "avp": {"assistant", "vice", "president"},
	"eng": {"engineer"}, "engr": {"engineer"}, "dev": {"developer"}, "exec": {"executive"},
	"acct": {"account"}, "mktg": {"marketing"}, "ops": {"operations"}, "asst": {"assistant"},
	"assoc": {"associate"}, "admin": {"administrator"}, "mgmt": {"management"}, "hr": {"human", "resources"},
	"rrhh": {"recursos", "humanos"}, "rh": {"ressources", "humaines"}, "gm": {"general", "manager"},
	"md": {"managing", "director"}, "ceo": {"chief", "executive", "officer"}, "cfo": {"chief", "financial", "officer"},
	"cto": {"chief", "technology", "officer"}, "cio": {"chief", "information", "officer"},
	"coo": {"chief", "operating", "officer"}, "cmo": {"chief", "marketing", "officer"},
	"cro": {"chief", "revenue", "officer"}, "chro": {"chief", "human", "resources", "officer"},
	"ciso": {"chief", "information", "security", "officer"}, "cpo": {"chief", "procurement", "officer"},
	"pdg": {"president", "directeur", "general"}, "dg": {"directeur", "general"}, "daf": {"directeur", "financier"},
	"it": {"informationtechnology"}, "edv": {"informationtechnology"}, "si": {"informationtechnology"},
}

// titleFillers carry no meaning of their own in any of the languages.
var titleFillers = map[string]bool{
	"of": true, "the": true, "and": true, "for": true, "in": true, "at": true, "to": true,
	"de": true, "des": true, "du": true, "la": true, "le": true, "les": true, "et": true, "d": true, "l": true,
	"der": true, "die": true, "das": true, "und": true, "fur": true, "im": true,
	"y": true, "del": true, "el": true, "los": true, "las": true, "e": true, "di": true, "della": true, "dei": true,
	"van": true, "voor": true, "en": true, "och": true,
}

// titleLevels are the words that say how senior a job is. Chief, head and
// director are one band ("CTO" and "technical director" are one role).
var titleLevels = map[string]string{
	"chief": "lead", "officer": "", "president": "lead", "head": "lead", "director": "lead", "directrice": "lead",
	"directeur": "lead", "direktor": "lead", "direktorin": "lead", "directora": "lead", "leiter": "lead", "leiterin": "lead",
	"jefe": "lead", "jefa": "lead", "responsable": "lead", "responsabile": "lead", "hoofd": "lead", "chef": "lead",
	"manager": "manager", "managerin": "manager", "gerente": "manager", "gestionnaire": "manager",
	"senior": "senior", "lead": "senior", "principal": "senior", "staff": "senior",
	"junior": "junior", "assistant": "junior", "assistent": "junior", "assistente": "junior", "intern": "junior",
	"trainee": "junior", "praktikant": "junior", "stagiaire": "junior", "apprentice": "junior", "werkstudent": "junior",
	"vice": "lead",
}

// titleFunctions are the common functions, by word (or, for the compounds
// German writes, by the start of a word), in the languages CRMs hold.
var titleFunctions = map[string][]string{
	"procurement": {"procurement", "purchasing", "purchase", "purchaser", "buyer", "buying", "sourcing", "einkauf",
		"einkaufer", "einkauferin", "beschaffung", "achats", "achat", "acheteur", "acheteuse", "approvisionnement",
		"compras", "comprador", "compradora", "acquisti", "inkoop", "inkoper", "inkop", "zakupow"},
	"finance": {"finance", "financial", "finances", "financier", "financiere", "finanz", "finanzen", "finanzas",
		"financiero", "financiera", "finanza", "finanziario", "financien", "accounting", "accountant", "controller",
		"controlling", "treasury", "treasurer", "comptable", "comptabilite", "buchhaltung", "buchhalter",
		"contabilidad", "contable", "tresorier"},
	"technology": {"technology", "technical", "technique", "technik", "technisch", "technischer", "technische",
		"tecnico", "tecnica", "tecnologia", "engineering", "ingenierie", "ingenieria", "entwicklung", "informationtechnology",
		"informatique", "informatik", "informatica", "software", "logiciel", "ingenieur", "developer", "developpeur", "entwickler"},
	"sales": {"sales", "vertrieb", "verkauf", "verkaufer", "ventes", "vente", "commercial", "commerciale", "ventas",
		"vendite", "verkoop", "account", "business development"},
	"marketing": {"marketing", "mercadotecnia", "brand", "communications", "kommunikation", "communication"},
	"people": {"human resources", "people", "personal", "personalwesen", "ressources humaines", "recursos humanos",
		"talent", "recruiting", "recruitment", "personeel", "rh"},
	"operations": {"operations", "operating", "operational", "betrieb", "exploitation", "operaciones", "logistics",
		"logistik", "logistique", "logistica", "supply chain", "produktion", "production"},
	"legal": {"legal", "counsel", "lawyer", "attorney", "recht", "rechtsanwalt", "justiziar", "juridique", "juriste",
		"juridico", "abogado", "avvocato", "jurist"},
	"executive": {"executive", "managing", "geschaftsfuhrer", "geschaftsfuhrerin", "vorstand", "general"},
}

// functionByWord and functionByPrefix index titleFunctions.
var functionByWord, functionByPrefix = indexFunctions()

func indexFunctions() (map[string]string, map[string]string) {
	words, prefixes := map[string]string{}, map[string]string{}
	for fn, ws := range titleFunctions {
		for _, w := range ws {
			words[w] = fn
			if !strings.Contains(w, " ") && len(w) >= 6 {
				prefixes[w] = fn
			}
		}
	}
	return words, prefixes
}

// parsedTitle is a title read for comparison.
type parsedTitle struct {
	words     []string // content words, sorted: no level or filler words
	functions []string // sorted
	level     string
}

func parseTitle(title string) parsedTitle {
	var expanded []string
	for _, w := range strings.Fields(fold(title)) {
		if x, ok := titleAbbreviations[w]; ok {
			expanded = append(expanded, x...)
		} else {
			expanded = append(expanded, w)
		}
	}
	var t parsedTitle
	addFn := func(fn string) {
		if !slices.Contains(t.functions, fn) {
			t.functions = append(t.functions, fn)
		}
	}
	for i, w := range expanded {
		if i+1 < len(expanded) {
			if fn, ok := functionByWord[w+" "+expanded[i+1]]; ok {
				addFn(fn)
			}
		}
		if titleFillers[w] {
			continue
		}
		if lvl, ok := titleLevels[w]; ok {
			if rank(lvl) > rank(t.level) {
				t.level = lvl
			}
			continue
		}
		t.words = append(t.words, w)
		if fn, ok := functionByWord[w]; ok {
			addFn(fn)
			continue
		}
		// German compounds: "Einkaufsleiter", "Finanzdirektorin".
		for stem, fn := range functionByPrefix {
			if strings.HasPrefix(w, stem) {
				addFn(fn)
				if lvl := compoundLevel(w[len(stem):]); rank(lvl) > rank(t.level) {
					t.level = lvl
				}
			}
		}
	}
	slices.Sort(t.words)
	slices.Sort(t.functions)
	return t
}

// compoundLevel is the level a German compound ends in ("…sleiter").
func compoundLevel(rest string) string {
	for w, lvl := range titleLevels {
		if lvl != "" && len(w) >= 4 && strings.HasSuffix(rest, w) {
			return lvl
		}
	}
	return ""
}

func rank(level string) int {
	return map[string]int{"": 0, "junior": 1, "senior": 2, "manager": 3, "lead": 4}[level]
}

// CompareTitles says how alike two job titles are.
func CompareTitles(a, b string) string {
	ta, tb := parseTitle(a), parseTitle(b)
	if len(ta.words)+len(ta.functions) == 0 && ta.level == "" || len(tb.words)+len(tb.functions) == 0 && tb.level == "" {
		return TitleMissing
	}
	if slices.Equal(ta.words, tb.words) && ta.level == tb.level {
		return TitleExact
	}
	related := sharesAny(ta.functions, tb.functions) || jaccard(ta.words, tb.words) >= 0.5
	switch {
	case related && ta.level == tb.level:
		return TitleSameRole
	case related:
		return TitleFunction
	}
	return TitleDiffers
}

func sharesAny(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// jaccard of two sorted word lists.
func jaccard(a, b []string) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	common := 0
	for _, w := range slices.Compact(slices.Clone(a)) {
		if slices.Contains(b, w) {
			common++
		}
	}
	union := len(slices.Compact(slices.Clone(a))) + len(slices.Compact(slices.Clone(b))) - common
	return float64(common) / float64(union)
}
