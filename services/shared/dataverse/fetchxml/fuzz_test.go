package fetchxml

import "testing"

// FuzzParse: any input either fails with an *Error or parses to a query
// whose canonical form parses back to itself.
func FuzzParse(f *testing.F) {
	f.Add(opportunitiesAtRisk)
	f.Add(`<fetch><entity name="contact"><all-attributes/><filter type="or"><condition attribute="a" operator="null"/></filter></entity></fetch>`)
	f.Add(`<fetch top="3"><entity name="opportunity"><filter><link-entity name="connection" from="record1id" to="opportunityid" link-type="any"><filter><condition attribute="statecode" operator="eq" value="0"/></filter></link-entity></filter></entity></fetch>`)
	f.Fuzz(func(t *testing.T, doc string) {
		q, err := Parse(doc)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		canon := q.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", canon, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form is not stable:\n%s\n%s", canon, again.String())
		}
		_ = q.Uses()
	})
}
