package provision

import (
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/crmschema"
)

// marker ends the description of every view and step provisioning owns:
// what carries it is ours to update; what does not is never touched.
const marker = "Managed by notatcompany."

// label is a Dataverse Label in English (1033).
func label(text string) map[string]any {
	return map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": []any{
		map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": 1033}}}
}

// flagOptions are the flag's values, the same as LinkedIn's.
var flagOptions = []struct {
	Value int
	Label string
}{{0, "No Feedback"}, {1, "Not at Company"}, {2, "Ignore"}}

// column is a column provisioning creates on contact.
type column struct {
	logical string
	typ     string // AttributeType
	body    map[string]any
}

func requiredNone() map[string]any {
	return map[string]any{"Value": "None", "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}
}

// schemaName is the SchemaName of a column we create: nac_OrgChangeStatus
// for the default flag, else the logical name itself (Dataverse lower-cases
// SchemaName into the logical name, so both work).
func schemaName(logical string) string {
	known := map[string]string{"nac_orgchangestatus": "nac_OrgChangeStatus", "nac_orgchangereason": "nac_OrgChangeReason",
		"nac_suggestedcompany": "nac_SuggestedCompany", "nac_orgchangedetectedon": "nac_OrgChangeDetectedOn",
		"nac_orgchangeconfidence": "nac_OrgChangeConfidence"}
	if s, ok := known[logical]; ok {
		return s
	}
	return logical
}

// flagColumn is the definition of our flag column (spec §1.3): a local
// choice, audited, on no form.
func flagColumn(logical string) column {
	var opts []any
	for _, o := range flagOptions {
		opts = append(opts, map[string]any{"Value": o.Value, "Label": label(o.Label)})
	}
	return column{logical: logical, typ: "Picklist", body: map[string]any{
		"@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata", "AttributeType": "Picklist",
		"AttributeTypeName": map[string]any{"Value": "PicklistType"}, "SourceTypeMask": 0,
		"SchemaName":     schemaName(logical),
		"DisplayName":    label("Not at Company Flag"),
		"Description":    label("Whether or not the contact belongs to the associated account (set by notatcompany)"),
		"RequiredLevel":  requiredNone(),
		"IsAuditEnabled": map[string]any{"Value": true, "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyauditsettings"},
		"OptionSet": map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata", "IsGlobal": false,
			"OptionSetType": "Picklist", "Options": opts},
	}}
}

// evidenceColumns are the columns the writer fills with a decision's why.
func evidenceColumns(prefix string) []column {
	names := crmschema.EvidenceColumns(prefix)
	text := func(logical, display, desc string, max int) column {
		return column{logical: logical, typ: "String", body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "AttributeType": "String",
			"AttributeTypeName": map[string]any{"Value": "StringType"}, "SchemaName": schemaName(logical),
			"DisplayName": label(display), "Description": label(desc), "RequiredLevel": requiredNone(),
			"MaxLength": max, "FormatName": map[string]any{"Value": "Text"},
		}}
	}
	return []column{
		text(names.Reason, "Not at Company Reason", "Why notatcompany set the flag: the evidence in a sentence", 400),
		text(names.SuggestedCompany, "Suggested New Company", "Where the contact works now, by notatcompany's evidence", 200),
		{logical: names.DetectedOn, typ: "DateTime", body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.DateTimeAttributeMetadata", "AttributeType": "DateTime",
			"AttributeTypeName": map[string]any{"Value": "DateTimeType"}, "SchemaName": schemaName(names.DetectedOn),
			"DisplayName": label("Not at Company Detected On"), "Description": label("When notatcompany learned the contact left"),
			"RequiredLevel": requiredNone(), "Format": "DateAndTime",
		}},
		{logical: names.Confidence, typ: "Decimal", body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.DecimalAttributeMetadata", "AttributeType": "Decimal",
			"AttributeTypeName": map[string]any{"Value": "DecimalType"}, "SchemaName": schemaName(names.Confidence),
			"DisplayName": label("Not at Company Confidence"), "Description": label("How sure notatcompany is of the match, 0 to 1"),
			"RequiredLevel": requiredNone(), "Precision": 2, "MinValue": 0, "MaxValue": 1,
		}},
	}
}

// View is one of the four public views.
type View struct {
	Name        string
	Table       string
	Description string
	FetchXML    string
	LayoutXML   string
}

const contactLayout = `<grid name="resultset" object="2" jump="fullname" select="1" icon="1" preview="1"><row name="result" id="contactid">` +
	`<cell name="fullname" width="300"/><cell name="parentcustomerid" width="200"/><cell name="jobtitle" width="150"/>` +
	`<cell name="emailaddress1" width="200"/><cell name="ownerid" width="150"/><cell name="modifiedon" width="140"/></row></grid>`

const opportunityLayout = `<grid name="resultset" object="3" jump="name" select="1" icon="1" preview="1"><row name="result" id="opportunityid">` +
	`<cell name="name" width="250"/><cell name="customerid" width="180"/><cell name="parentcontactid" width="180"/>` +
	`<cell name="estimatedvalue" width="120"/><cell name="estimatedclosedate" width="120"/><cell name="ownerid" width="150"/></row></grid>`

func contactsFetch(flag string, mine bool) string {
	my := ""
	if mine {
		my = `<condition attribute="ownerid" operator="eq-userid"/>`
	}
	return `<fetch version="1.0" output-format="xml-platform" mapping="logical" distinct="false"><entity name="contact">` +
		`<attribute name="fullname"/><attribute name="parentcustomerid"/><attribute name="jobtitle"/><attribute name="emailaddress1"/>` +
		`<attribute name="ownerid"/><attribute name="modifiedon"/><attribute name="contactid"/>` +
		`<order attribute="modifiedon" descending="true"/><filter type="and">` +
		`<condition attribute="statecode" operator="eq" value="0"/>` +
		`<condition attribute="` + flag + `" operator="eq" value="1"/>` + my +
		`</filter></entity></fetch>`
}

// opportunitiesFetch is the open opportunities whose contact or customer
// contact is flagged: two outer links and an or over their aliases.
func opportunitiesFetch(flag string, mine bool) string {
	my := ""
	if mine {
		my = `<condition attribute="ownerid" operator="eq-userid"/>`
	}
	return `<fetch version="1.0" output-format="xml-platform" mapping="logical" distinct="true"><entity name="opportunity">` +
		`<attribute name="name"/><attribute name="customerid"/><attribute name="parentcontactid"/><attribute name="estimatedvalue"/>` +
		`<attribute name="estimatedclosedate"/><attribute name="ownerid"/><attribute name="opportunityid"/>` +
		`<order attribute="estimatedclosedate" descending="false"/><filter type="and">` +
		`<condition attribute="statecode" operator="eq" value="0"/>` + my +
		`<filter type="or">` +
		`<condition entityname="pc" attribute="` + flag + `" operator="eq" value="1"/>` +
		`<condition entityname="cc" attribute="` + flag + `" operator="eq" value="1"/>` +
		`</filter></filter>` +
		`<link-entity name="contact" from="contactid" to="parentcontactid" link-type="outer" alias="pc"/>` +
		`<link-entity name="contact" from="contactid" to="customerid" link-type="outer" alias="cc"/>` +
		`</entity></fetch>`
}

// Views are the four public views, on the flag column flag.
func Views(flag string) []View {
	return []View{
		{Name: "All Contacts Not at Company", Table: "contact", FetchXML: contactsFetch(flag, false), LayoutXML: contactLayout,
			Description: "Active contacts notatcompany flagged as no longer at their account. " + marker},
		{Name: "My Contacts Not at Company", Table: "contact", FetchXML: contactsFetch(flag, true), LayoutXML: contactLayout,
			Description: "My active contacts notatcompany flagged as no longer at their account. " + marker},
		{Name: "All Opportunities at Risk – Contact Left", Table: "opportunity", FetchXML: opportunitiesFetch(flag, false), LayoutXML: opportunityLayout,
			Description: "Open opportunities whose contact or customer contact is flagged Not at Company. " + marker},
		{Name: "My Opportunities at Risk – Contact Left", Table: "opportunity", FetchXML: opportunitiesFetch(flag, true), LayoutXML: opportunityLayout,
			Description: "My open opportunities whose contact or customer contact is flagged Not at Company. " + marker},
	}
}

// Step is one webhook step with its image.
type Step struct {
	Message string // Create, Update or Delete
	Table   string
	// Filtering is the columns an Update must touch to fire (Update only).
	Filtering []string
	// ImageType is 0 (pre) for Delete, 1 (post) otherwise; ImageProperty
	// the message property the image is of: Id on Create, Target else.
	ImageType     int
	ImageProperty string
	ImageColumns  []string
}

// Name is the step's name, by which provisioning finds it again.
func (s Step) Name() string { return "notatcompany: " + s.Message + " of " + s.Table }

// imageAlias is the key of our image in the webhook's image lists.
const imageAlias = "nac_image"

// Steps are the desired steps: Create, Update and Delete of contact,
// account, opportunity and connection (an opportunity's stakeholders),
// Update of systemuser, each filtered on and imaging exactly the columns
// the validator reads.
func Steps(cols crmschema.Columns) []Step {
	var steps []Step
	for _, table := range crmschema.Tables() {
		read := cols.Read(table)
		messages := []string{"Create", "Update", "Delete"}
		if table == "systemuser" {
			messages = []string{"Update"} // users are disabled, never deleted
		}
		for _, m := range messages {
			st := Step{Message: m, Table: table, ImageType: 1, ImageProperty: "Target", ImageColumns: read}
			switch m {
			case "Create":
				st.ImageProperty = "Id"
			case "Update":
				st.Filtering = read
			case "Delete":
				st.ImageType = 0
			}
			steps = append(steps, st)
		}
	}
	return steps
}

func joinList(cols []string) string { return strings.Join(cols, ",") }
