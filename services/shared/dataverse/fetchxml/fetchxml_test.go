package fetchxml

import (
	"errors"
	"strings"
	"testing"
)

const opportunitiesAtRisk = `<fetch version="1.0" output-format="xml-platform" mapping="logical" distinct="true">
  <entity name="opportunity">
    <attribute name="name"/><attribute name="customerid"/><attribute name="opportunityid"/>
    <order attribute="estimatedclosedate" descending="false"/>
    <filter type="and">
      <condition attribute="statecode" operator="eq" value="0"/>
      <condition attribute="ownerid" operator="eq-userid"/>
      <filter type="or" hint="union">
        <condition entityname="pc" attribute="nac_orgchangestatus" operator="eq" value="1"/>
        <condition entityname="cc" attribute="nac_orgchangestatus" operator="eq" value="1"/>
      </filter>
    </filter>
    <link-entity name="contact" from="contactid" to="parentcontactid" link-type="outer" alias="pc"/>
    <link-entity name="contact" from="contactid" to="customerid" link-type="outer" alias="cc"/>
  </entity>
</fetch>`

func TestParse(t *testing.T) {
	f, err := Parse(strings.Replace(opportunitiesAtRisk, ` hint="union"`, "", 1))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Distinct || f.Entity.Name != "opportunity" || len(f.Entity.Attributes) != 3 || len(f.Entity.Links) != 2 {
		t.Fatalf("parsed %+v", f)
	}
	top := f.Entity.Filters[0]
	if top.Or || len(top.Conditions) != 2 || top.Conditions[1].Operator != "eq-userid" || len(top.Filters) != 1 || !top.Filters[0].Or {
		t.Fatalf("top filter %+v", top)
	}
	if c := top.Filters[0].Conditions[1]; c.EntityName != "cc" || c.Attribute != "nac_orgchangestatus" || c.Value != "1" {
		t.Fatalf("alias condition %+v", c)
	}
	if l := f.Entity.Links[0]; l.Name != "contact" || l.From != "contactid" || l.To != "parentcontactid" || l.Type != "outer" || l.Alias != "pc" {
		t.Fatalf("link %+v", l)
	}
	uses := map[Use]bool{}
	for _, u := range f.Uses() {
		uses[u] = true
	}
	for _, want := range []Use{{"opportunity", "estimatedclosedate"}, {"contact", "nac_orgchangestatus"}, {"opportunity", "parentcontactid"}, {"contact", "contactid"}, {"opportunity", "ownerid"}} {
		if !uses[want] {
			t.Errorf("Uses lacks %v", want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ doc, path string }{
		{`<fetch><entity name="contact"><filter><condition attribute="x" operator="like" value="a%"/></filter></entity></fetch>`, "fetch/entity/filter[1]/condition[1]/@operator"},
		{`<fetch><entity name="contact"><filter><condition attribute="x" operator="eq"/></filter></entity></fetch>`, "fetch/entity/filter[1]/condition[1]/@value"},
		{`<fetch><entity name="contact"><filter><condition attribute="x" operator="null" value="1"/></filter></entity></fetch>`, "fetch/entity/filter[1]/condition[1]/@value"},
		{`<fetch><entity name="contact"><filter><condition entityname="zz" attribute="x" operator="null"/></filter></entity></fetch>`, "fetch/entity/filter/condition[1]/@entityname"},
		{`<fetch><entity name="Contact"/></fetch>`, "fetch/entity/@name"},
		{`<fetch><entity name="contact"/><entity name="account"/></fetch>`, "fetch/entity"},
		{`<query/>`, "query"},
		{`<fetch><entity name="contact"><link-entity name="account" from="accountid" to="parentcustomerid" link-type="sideways"/></entity></fetch>`, "fetch/entity/link-entity[1]/@link-type"},
		{`<fetch><entity name="contact"><link-entity name="account" from="accountid" to="parentcustomerid" link-type="any"/></entity></fetch>`, "fetch/entity/link-entity[1]"},
		{`<fetch><entity name="contact"><link-entity name="a" from="b" to="c" alias="x"/><link-entity name="a" from="b" to="c" alias="x"/></entity></fetch>`, "fetch/entity/link-entity[2]/@alias"},
		{`<fetch><entity name="contact"></fetch>`, "fetch"},
		{`<fetch><entity name="contact"/></fetch><fetch/>`, "fetch"},
		{`<fetch aggregate="true"><entity name="contact"/></fetch>`, "fetch/@aggregate"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.doc)
		var fe *Error
		if !errors.As(err, &fe) || fe.Path != tt.path {
			t.Errorf("Parse(%s) = %v, want an error at %s", tt.doc, err, tt.path)
		}
	}
	deep := strings.Repeat("<filter>", maxDepth+2) + strings.Repeat("</filter>", maxDepth+2)
	if _, err := Parse(`<fetch><entity name="contact">` + deep + `</entity></fetch>`); err == nil {
		t.Error("a filter nested beyond the limit parsed")
	}
}

func TestEquivalent(t *testing.T) {
	respelled := strings.NewReplacer(`"`, `'`, "\n    ", "", `<attribute name="name"/><attribute name="customerid"/>`, `<attribute name='name' /><attribute name='customerid' />`).Replace(opportunitiesAtRisk)
	if !Equivalent(opportunitiesAtRisk, respelled) {
		t.Error("the same query with other quoting and spacing is not equivalent")
	}
	changed := strings.Replace(opportunitiesAtRisk, `operator="eq-userid"`, `operator="ne-userid"`, 1)
	if Equivalent(opportunitiesAtRisk, changed) {
		t.Error("a different operator is equivalent")
	}
	if Equivalent(opportunitiesAtRisk, "<fetch") {
		t.Error("a broken document is equivalent")
	}
	f, _ := Parse(opportunitiesAtRisk)
	again, err := Parse(f.String())
	if err != nil || again.String() != f.String() {
		t.Fatalf("String does not round-trip: %v\n%s", err, f.String())
	}
}
