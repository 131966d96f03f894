package devstack

// Demo identities: the rows the examples in scripts/examples/ talk about.
// They exist in the stand-in from the start, as they would in Dynamics.
const (
	DemoOrganizationID = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
	DemoContactID      = "3a7e9c10-5b2d-4f8e-9a61-7c4d2e8b1f03"
	DemoAccountID      = "b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e"
)

// DemoRow is a row seeded into the stand-in.
type DemoRow struct {
	EntitySet string
	ID        string
	Columns   map[string]any
}

// DemoRows are seeded when absent.
var DemoRows = []DemoRow{
	{EntitySet: "accounts", ID: DemoAccountID, Columns: map[string]any{
		"name": "Contoso Ltd", "websiteurl": "https://www.contoso.com",
	}},
	{EntitySet: "contacts", ID: DemoContactID, Columns: map[string]any{
		"firstname": "Avery", "lastname": "Quinn", "emailaddress1": "avery.quinn@contoso.com",
		"_parentcustomerid_value": DemoAccountID, "nac_orgchangestatus": 0,
	}},
}
