// Package crmschema is the one list of the Dynamics 365 tables and columns
// notatcompany reads. The validator keeps exactly these columns, and
// provisioning registers them as the webhook steps' filtering attributes
// and image columns, so a change Dynamics sends is a change the validator
// uses, and the other way round.
package crmschema

import (
	"regexp"
	"slices"
)

// DefaultFlagColumn is the contact's Not at Company column provisioning
// creates; LinkedIn's msdyn_orgchangestatus is the other choice.
const DefaultFlagColumn = "nac_orgchangestatus"

var columnRE = regexp.MustCompile(`^[a-z][a-z0-9_]{1,99}$`)

// IsColumnName reports whether s can be a configured column's logical name.
func IsColumnName(s string) bool { return columnRE.MatchString(s) }

// Tables the validator keeps rows of, in the order provisioning registers them.
func Tables() []string {
	return []string{"contact", "account", "opportunity", "systemuser", "connection"}
}

// Kept returns the standard columns the validator keeps of table, by
// logical name, or nil for a table it does not track.
func Kept(table string) []string {
	switch table {
	case "contact":
		return []string{"firstname", "lastname", "fullname", "emailaddress1", "emailaddress2", "emailaddress3",
			"parentcustomerid", "ownerid", "statecode", "jobtitle", "address1_country", "createdon"}
	case "account":
		return []string{"name", "websiteurl", "ownerid", "statecode"}
	case "opportunity":
		return []string{"parentcontactid", "customerid", "parentaccountid", "ownerid", "statecode"}
	case "systemuser":
		return []string{"isdisabled"}
	case "connection":
		// A connection links two records, each end with its table (its
		// object type code when the lookup does not name it) and its role:
		// an opportunity's stakeholder contacts.
		return []string{"record1id", "record2id", "record1objecttypecode", "record2objecttypecode",
			"record1roleid", "record2roleid", "statecode"}
	}
	return nil
}

// Tracked reports whether the validator keeps rows of table.
func Tracked(table string) bool { return Kept(table) != nil }

// Columns names the organization-specific columns the validator reads.
type Columns struct {
	Flag       string // the contact's Not at Company column
	ProfileURL string // a LinkedIn profile URL column on contact, if any
	MemberID   string // a member id column on contact, if any
	CompanyID  string // a company id column on account, if any
	// LinkedInStatus is LinkedIn's msdyn_orgchangestatus on contact, read
	// as corroboration when the organization has it beside the flag column.
	LinkedInStatus string
}

// Extra returns the configured columns kept of table.
func (c Columns) Extra(table string) []string {
	var cols []string
	add := func(names ...string) {
		for _, n := range names {
			if n != "" {
				cols = append(cols, n)
			}
		}
	}
	switch table {
	case "contact":
		add(c.Flag, c.ProfileURL, c.MemberID, c.LinkedInStatus)
	case "account":
		add(c.CompanyID)
	}
	return cols
}

// Read returns every column the validator reads of table, standard and
// configured, sorted and without duplicates.
func (c Columns) Read(table string) []string {
	if !Tracked(table) {
		return nil
	}
	cols := append(Kept(table), c.Extra(table)...)
	slices.Sort(cols)
	return slices.Compact(cols)
}

// DefaultPrefix is the customization prefix of provisioning's components
// ("nac_orgchangestatus") unless an organization picks another.
const DefaultPrefix = "nac"

// Evidence names the contact columns provisioning creates and the writer
// fills, with the flag, with a decision's why.
type Evidence struct {
	Reason           string // a sentence: the evidence, in words
	SuggestedCompany string // where the contact works now
	DetectedOn       string // when notatcompany learned the contact left
	Confidence       string // how sure the match is, 0 to 1
}

// EvidenceColumns are the evidence columns under a customization prefix.
func EvidenceColumns(prefix string) Evidence {
	return Evidence{Reason: prefix + "_orgchangereason", SuggestedCompany: prefix + "_suggestedcompany",
		DetectedOn: prefix + "_orgchangedetectedon", Confidence: prefix + "_orgchangeconfidence"}
}
