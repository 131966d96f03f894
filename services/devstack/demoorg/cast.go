package demoorg

import (
	"strings"

	"github.com/notatcompany/notatcompany/services/devstack"
)

// Case is what a contact of the demo is there to show.
type Case string

// The cases of the demo organization.
const (
	CaseLeaver      Case = "leaver"
	CaseStayer      Case = "stayer"
	CaseSubsidiary  Case = "moved to a subsidiary"
	CaseNamesake    Case = "namesake left elsewhere"
	CaseIgnore      Case = "Ignore, then left"
	CaseOutOfScope  Case = "out of scope, left"
	CaseOpportunity Case = "left, in scope by opportunity"
	CaseNoProfile   Case = "no profile"
)

// expected is the flag each case should end with: the demo waits for it.
func (c Case) expected() int {
	switch c {
	case CaseLeaver, CaseOpportunity:
		return 1
	case CaseIgnore:
		return 2
	}
	return 0
}

// user is a systemuser of the demo's CRM.
type user struct {
	id, name string
	sync     bool // a sync user: what they own is validated
}

// The demo's users: the devstack's demo seller and a second seller, both
// sync users, and a colleague who is not one.
var (
	sellerA  = user{id: devstack.DemoSyncUserID, name: "Demo Seller", sync: true}
	sellerB  = user{id: "5b0c7f2e-8d4a-4c1b-9e6f-2a3b4c5d6e7f", name: "Dana Whitfield", sync: true}
	outsider = user{id: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f2a3b4c5d", name: "Robin Hale"}
	users    = []user{sellerA, sellerB, outsider}
)

// company is a company page the profile feed describes.
type company struct {
	id, name, domain, parent string
}

var companies = []company{
	{"c-contoso", "Contoso Ltd", "contoso.com", ""},
	{"c-contoso-pharma", "Contoso Pharmaceuticals", "contosopharma.com", "c-contoso"},
	{"c-fabrikam", "Fabrikam, Inc.", "fabrikam.com", ""},
	{"c-northwind", "Northwind Traders", "northwindtraders.com", ""},
	{"c-tailspin", "Tailspin Toys", "tailspintoys.com", ""},
	{"c-litware", "Litware, Inc.", "litware.com", ""},
	{"c-woodgrove", "Woodgrove Bank", "woodgrovebank.com", ""},
	{"c-adventure", "Adventure Works", "adventure-works.com", ""},
	{"c-wingtip", "Wingtip Toys", "wingtiptoys.com", ""},
	{"c-proseware", "Proseware, Inc.", "proseware.com", ""},
}

func companyByID(id string) company {
	for _, c := range companies {
		if c.id == id {
			return c
		}
	}
	return company{}
}

// account is an account of the demo's CRM, at a company of the feed.
type account struct {
	key, company string
	owner        user
}

func (a account) name() string    { return companyByID(a.company).name }
func (a account) website() string { return "https://www." + companyByID(a.company).domain }

var accounts = []account{
	{"contoso", "c-contoso", sellerA},
	{"fabrikam", "c-fabrikam", sellerA},
	{"northwind", "c-northwind", sellerB},
	{"tailspin", "c-tailspin", sellerB},
	{"litware", "c-litware", sellerB},
	{"woodgrove", "c-woodgrove", outsider},
}

func accountByKey(key string) account {
	for _, a := range accounts {
		if a.key == key {
			return a
		}
	}
	return account{}
}

// person is a contact and what the profile feed says of them.
type person struct {
	first, last, title string
	account            string // its key
	kind               Case
	// to is the company the profile says they work at now, with the
	// title there; "" for a leaver with no new position.
	to, toTitle string
	// from is, for a namesake, the company the namesake left.
	from string
	// owner is the contact's owner when not the account's.
	owner *user
}

func (p person) name() string { return p.first + " " + p.last }

// email is the contact's work address in this run: each run's people are
// people of their own, so that runs never share a member.
func (p person) email(run string) string {
	domain := companyByID(accountByKey(p.account).company).domain
	return strings.ToLower(p.first+"."+p.last) + "+" + run + "@" + domain
}

func (p person) ownedBy() user {
	if p.owner != nil {
		return *p.owner
	}
	return accountByKey(p.account).owner
}

var cast = []person{
	{first: "Harper", last: "Lane", title: "Procurement Manager", account: "contoso", kind: CaseLeaver, to: "c-fabrikam", toTitle: "Head of Procurement"},
	{first: "Riley", last: "Park", title: "Buyer", account: "contoso", kind: CaseStayer},
	{first: "Jordan", last: "Ellis", title: "IT Director", account: "contoso", kind: CaseLeaver, to: "c-adventure", toTitle: "Chief Technology Officer"},
	{first: "Morgan", last: "Reyes", title: "Finance Lead", account: "contoso", kind: CaseSubsidiary, to: "c-contoso-pharma", toTitle: "Finance Director"},
	{first: "Casey", last: "Nguyen", title: "Procurement Analyst", account: "contoso", kind: CaseIgnore, to: "c-wingtip", toTitle: "Buyer"},
	{first: "Taylor", last: "Brooks", title: "Office Manager", account: "contoso", kind: CaseNoProfile},
	{first: "Ethan", last: "Cole", title: "Account Executive", account: "contoso", kind: CaseStayer},

	{first: "Sam", last: "Taylor", title: "Head of Sales", account: "fabrikam", kind: CaseNamesake, from: "c-northwind", to: "c-proseware", toTitle: "Sales Director"},
	{first: "Drew", last: "Patel", title: "Category Manager", account: "fabrikam", kind: CaseLeaver, to: "c-tailspin", toTitle: "Senior Buyer"},
	{first: "Jamie", last: "Lindqvist", title: "Chief Financial Officer", account: "fabrikam", kind: CaseStayer},
	{first: "Alex", last: "Romero", title: "Operations Manager", account: "fabrikam", kind: CaseStayer},
	{first: "Ravi", last: "Shah", title: "Engineer", account: "fabrikam", kind: CaseLeaver},

	{first: "Priya", last: "Raman", title: "VP Marketing", account: "northwind", kind: CaseLeaver, to: "c-litware", toTitle: "Chief Marketing Officer"},
	{first: "Noah", last: "Becker", title: "Logistics Lead", account: "northwind", kind: CaseStayer},
	{first: "Elena", last: "Rossi", title: "Purchasing Manager", account: "northwind", kind: CaseLeaver, to: "c-fabrikam", toTitle: "Purchasing Director"},
	{first: "Chris", last: "Okafor", title: "Sales Manager", account: "northwind", kind: CaseStayer},
	{first: "Lena", last: "Vogel", title: "Analyst", account: "northwind", kind: CaseStayer},

	{first: "Marco", last: "Silva", title: "Designer", account: "tailspin", kind: CaseStayer},
	{first: "Hana", last: "Sato", title: "Product Lead", account: "tailspin", kind: CaseLeaver, to: "c-wingtip", toTitle: "Head of Product"},
	{first: "Omar", last: "Haddad", title: "Buyer", account: "tailspin", kind: CaseStayer},
	{first: "Nina", last: "Kowalski", title: "Supply Chain Manager", account: "tailspin", kind: CaseLeaver, to: "c-contoso", toTitle: "Supply Chain Director"},
	{first: "Zoe", last: "Adams", title: "Risk Officer", account: "tailspin", kind: CaseStayer},

	{first: "Grace", last: "Kim", title: "Platform Architect", account: "litware", kind: CaseLeaver, to: "c-proseware", toTitle: "Principal Architect"},
	{first: "Ben", last: "Carter", title: "Support Lead", account: "litware", kind: CaseStayer},
	{first: "Ivy", last: "Chen", title: "Developer", account: "litware", kind: CaseStayer},
	{first: "Sofia", last: "Lopez", title: "Partner Manager", account: "litware", kind: CaseLeaver, to: "c-tailspin", toTitle: "Partnerships Lead"},

	{first: "Leo", last: "Martin", title: "Treasury Analyst", account: "woodgrove", kind: CaseOutOfScope, to: "c-contoso", toTitle: "Treasurer"},
	{first: "Mia", last: "Wright", title: "IT Procurement Lead", account: "woodgrove", kind: CaseOpportunity, to: "c-adventure", toTitle: "IT Manager"},
}

// opportunity is an open opportunity of a seller, with its contact.
type opportunity struct {
	name, account, contact string // account key, contact's full name
	owner                  user
}

var opportunities = []opportunity{
	{"Contoso renewal", "contoso", "Harper Lane", sellerA},
	{"Contoso analytics pilot", "contoso", "Riley Park", sellerA},
	{"Fabrikam expansion", "fabrikam", "Drew Patel", sellerA},
	{"Northwind logistics suite", "northwind", "Noah Becker", sellerB},
	{"Tailspin holiday order", "tailspin", "Hana Sato", sellerB},
	{"Litware platform migration", "litware", "Grace Kim", sellerB},
	// Woodgrove is a colleague's account: this opportunity brings its
	// contact, and only it, into scope.
	{"Woodgrove payments pilot", "woodgrove", "Mia Wright", sellerB},
}

// reversalOf is the leaver whose seller moves them to the account of the
// company they joined, once the table is printed. No one of the cast has
// the name of the README's example contact (Avery Quinn at Contoso), whom
// a namesake at the same company would otherwise match by name.
const reversalOf = "Harper Lane"
