package devstack

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// Demo identities: the rows the examples in scripts/examples/ talk about.
// They exist in the stand-in from the start, as they would in Dynamics.
const (
	DemoOrganizationID = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
	DemoContactID      = "3a7e9c10-5b2d-4f8e-9a61-7c4d2e8b1f03"
	DemoAccountID      = "b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e"
	// DemoSyncUserID owns the demo contact and account: a sync user, so
	// they are in scope.
	DemoSyncUserID = "0c9a8b7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
	// DemoOpportunityID is an open opportunity of the demo contact: at
	// risk while the contact is flagged.
	DemoOpportunityID = "7f3e2d1c-0b9a-4876-8543-210fedcba987"
)

// demoSeededAt dates the demo's admin changes: any real change is newer.
var demoSeededAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// seedAdmin makes the demo organization ready, as an admin would through
// the admin API: its sync user added and data validation switched on.
func seedAdmin(ctx context.Context, pub *bus.Publisher) error {
	at := timestamppb.New(demoSeededAt)
	if err := pub.PublishProto(ctx, bus.AdminSyncUserSubject(DemoOrganizationID, DemoSyncUserID), "devstack.seed.syncuser",
		&eventsv1.SyncUserChange{EventId: "devstack.seed.syncuser", OrganizationId: DemoOrganizationID,
			UserId: DemoSyncUserID, Enabled: true, ChangedAt: at}); err != nil {
		return fmt.Errorf("seed sync user: %w", err)
	}
	if err := pub.PublishProto(ctx, bus.AdminSettingsSubject(DemoOrganizationID), "devstack.seed.settings",
		&eventsv1.OrgSettingsChange{EventId: "devstack.seed.settings", OrganizationId: DemoOrganizationID,
			DataValidation: true, ReflagAfterIgnore: true, ChangedAt: at}); err != nil {
		return fmt.Errorf("seed settings: %w", err)
	}
	return nil
}

// DemoRow is a row seeded into the stand-in.
type DemoRow struct {
	EntitySet string
	ID        string
	Columns   map[string]any
}

// DemoRows are seeded when absent.
var DemoRows = []DemoRow{
	{EntitySet: "systemusers", ID: DemoSyncUserID, Columns: map[string]any{
		"fullname": "Demo Seller", "isdisabled": false,
	}},
	{EntitySet: "accounts", ID: DemoAccountID, Columns: map[string]any{
		"name": "Contoso Ltd", "websiteurl": "https://www.contoso.com", "statecode": 0,
		"_ownerid_value": DemoSyncUserID, "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
	}},
	{EntitySet: "contacts", ID: DemoContactID, Columns: map[string]any{
		"firstname": "Avery", "lastname": "Quinn", "fullname": "Avery Quinn", "emailaddress1": "avery.quinn@contoso.com",
		"jobtitle": "Procurement Manager", "statecode": 0, "nac_orgchangestatus": 0,
		"_parentcustomerid_value": DemoAccountID, "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
		"_ownerid_value": DemoSyncUserID, "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
	}},
	{EntitySet: "opportunities", ID: DemoOpportunityID, Columns: map[string]any{
		"name": "Contoso renewal", "statecode": 0,
		"_parentcontactid_value": DemoContactID, "_parentcontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "contact",
		"_parentaccountid_value": DemoAccountID, "_parentaccountid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
		"_ownerid_value": DemoSyncUserID, "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
	}},
}
