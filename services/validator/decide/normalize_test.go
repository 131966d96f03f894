package decide

import "testing"

func TestCompanyKey(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"accents and S.A.", "Société Générale S.A.", "societe generale"},
		{"plain folded", "societe generale", "societe generale"},
		{"upper case", "SOCIÉTÉ GÉNÉRALE", "societe generale"},
		{"Inc", "Contoso Inc", "contoso"},
		{"Inc.", "Contoso Inc.", "contoso"},
		{"Ltd", "Contoso Ltd", "contoso"},
		{"comma Ltd.", "Contoso, Ltd.", "contoso"},
		{"GmbH", "Contoso GmbH", "contoso"},
		{"SAS", "Contoso SAS", "contoso"},
		{"S.A.S.", "Contoso S.A.S.", "contoso"},
		{"AG", "Contoso AG", "contoso"},
		{"BV", "Contoso BV", "contoso"},
		{"LLC", "Contoso LLC", "contoso"},
		{"B.V.", "Contoso B.V.", "contoso"},
		{"S.p.A.", "Fabrikam S.p.A.", "fabrikam"},
		{"initials kept as a name", "J. P. Morgan", "jp morgan"},
		{"several suffixes", "Contoso Holdings Ltd", "contoso"},
		{"ampersand kept together", "AT&T Inc.", "att"},
		{"ampersand", "AT&T", "att"},
		{"apostrophe", "McDonald's Corporation", "mcdonalds"},
		{"punctuation to spaces", "Fabrikam-Tailspin/Wingtip", "fabrikam tailspin wingtip"},
		{"runs of punctuation and space", "  Fabrikam -- (Europe)  ", "fabrikam europe"},
		{"suffix in the middle stays", "Contoso Ltd Europe", "contoso ltd europe"},
		{"lone suffix stays", "Inc", "inc"},
		{"digits", "3M Company", "3m"},
		{"empty", "", ""},
		{"only punctuation", "--- . ---", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CompanyKey(tt.in); got != tt.want {
				t.Errorf("CompanyKey(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCompanyKeyEquivalences(t *testing.T) {
	pairs := [][2]string{
		{"Société Générale S.A.", "societe generale"},
		{"AT&T Inc.", "att"},
		{"Contoso Ltd", "CONTOSO, LIMITED"},
		{"Contoso GmbH", "contoso"},
		{"Zürich Versicherung AG", "Zurich Versicherung"},
	}
	for _, p := range pairs {
		if a, b := CompanyKey(p[0]), CompanyKey(p[1]); a != b {
			t.Errorf("CompanyKey(%q) = %q, CompanyKey(%q) = %q; want equal", p[0], a, p[1], b)
		}
	}
	if a, b := CompanyKey("Contoso"), CompanyKey("Fabrikam"); a == b {
		t.Errorf("different companies share key %q", a)
	}
}

func TestNameKey(t *testing.T) {
	tests := []struct {
		first, last string
		want        string
	}{
		{"José", "Núñez", "jose nunez"},
		{"JOSE", "NUNEZ", "jose nunez"},
		{"Anne-Marie", "Müller", "anne marie muller"},
		{"  Seán ", " O'Brien ", "sean obrien"},
		{"François", "", "francois"},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := NameKey(tt.first, tt.last); got != tt.want {
			t.Errorf("NameKey(%q, %q) = %q, want %q", tt.first, tt.last, got, tt.want)
		}
	}
	if NameKey("José", "Núñez") != NameKey("jose", "nunez") {
		t.Error("accented and plain names differ")
	}
}

func TestDomain(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"https://www.shop.contoso.co.uk/x", "contoso.co.uk"},
		{"contoso.com", "contoso.com"},
		{"www.contoso.com", "contoso.com"},
		{"  HTTPS://WWW.Contoso.COM/About  ", "contoso.com"},
		{"http://contoso.com:8080/path?q=1", "contoso.com"},
		{"https://user@sub.contoso.de", "contoso.de"},
		{"", ""},
		{"   ", ""},
		{"not a url", ""},
		{"http://", ""},
		{"%%%", ""},
		{"localhost", ""},
		{"co.uk", ""},
		{"http://127.0.0.1/", ""},
	}
	for _, tt := range tests {
		if got := Domain(tt.in); got != tt.want {
			t.Errorf("Domain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
