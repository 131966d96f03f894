package crmschema

import (
	"slices"
	"testing"
)

func TestRead(t *testing.T) {
	cols := Columns{Flag: "nac_orgchangestatus", ProfileURL: "nac_linkedinurl", CompanyID: "nac_companyid", LinkedInStatus: "msdyn_orgchangestatus"}
	tests := []struct {
		table string
		want  []string
	}{
		{"contact", []string{"address1_country", "createdon", "emailaddress1", "emailaddress2", "emailaddress3", "firstname", "fullname",
			"jobtitle", "lastname", "msdyn_orgchangestatus", "nac_linkedinurl", "nac_orgchangestatus", "ownerid", "parentcustomerid", "statecode"}},
		{"account", []string{"nac_companyid", "name", "ownerid", "statecode", "websiteurl"}},
		{"opportunity", []string{"customerid", "ownerid", "parentaccountid", "parentcontactid", "statecode"}},
		{"systemuser", []string{"isdisabled"}},
		{"connection", []string{"record1id", "record1objecttypecode", "record1roleid", "record2id", "record2objecttypecode", "record2roleid", "statecode"}},
		{"lead", nil},
	}
	for _, tt := range tests {
		if got := cols.Read(tt.table); !slices.Equal(got, tt.want) {
			t.Errorf("Read(%s) = %v, want %v", tt.table, got, tt.want)
		}
	}
	if got := (Columns{Flag: "ownerid"}).Read("contact"); len(got) != len(Kept("contact")) {
		t.Errorf("a configured column that is also standard is listed once: %v", got)
	}
}

func TestKeptIsACopy(t *testing.T) {
	Kept("contact")[0] = "changed"
	if Kept("contact")[0] != "firstname" {
		t.Fatal("Kept returned shared storage")
	}
	for _, table := range Tables() {
		if !Tracked(table) {
			t.Errorf("%s is listed but not tracked", table)
		}
	}
}
