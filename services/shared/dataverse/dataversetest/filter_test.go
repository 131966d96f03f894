package dataversetest

import "testing"

func TestFilter(t *testing.T) {
	t.Parallel()
	row := map[string]any{"name": "O'Brien", "statecode": float64(0), "isdisabled": false,
		"_ownerid_value": "aaaaaaaa-0000-4000-8000-00000000000a", "nac_flag": nil}
	tests := []struct {
		filter string
		want   bool
	}{
		{"name eq 'o''brien'", true},
		{"statecode eq 0 and isdisabled eq false", true},
		{"statecode eq 1 or name eq 'O''Brien'", true},
		{"not (statecode eq 0)", false},
		{"_ownerid_value eq AAAAAAAA-0000-4000-8000-00000000000A", true},
		{"nac_flag eq null", true},
		{"nac_flag ne null", false},
		{"nac_flag eq 1", false},
		{"nac_flag ne 1", true}, // OData: null ne 1
		{"missing eq null", true},
		{"statecode lt 1 and statecode ge 0", true},
	}
	for _, tt := range tests {
		f, err := parseFilter(tt.filter)
		if err != nil {
			t.Fatalf("%s: %v", tt.filter, err)
		}
		if got := f.match(row); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.filter, got, tt.want)
		}
	}
	for _, bad := range []string{"name eq", "name 'x'", "(name eq 'x'", "name eq 'x", "sdkmessageid/name eq 'Update'", "contains(name,'x')", "name eq 'x' and", "name eq 'x')"} {
		if _, err := parseFilter(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzFilter: any $filter parses or fails with an error, never panics,
// and a parsed one evaluates.
func FuzzFilter(f *testing.F) {
	f.Add("uniquename eq 'notatcompany'")
	f.Add("returnedtypecode eq 'contact' and querytype eq 0 and name eq 'All Contacts – Not'")
	f.Add("not (a eq 1 or b ne null) and _x_value eq 5d1f4c8e-2b7a-4e0c-9a3d-6f8b1e2c4a7d")
	f.Fuzz(func(t *testing.T, src string) {
		flt, err := parseFilter(src)
		if err != nil {
			return
		}
		_ = flt.match(map[string]any{"a": float64(1), "b": "x", "_x_value": "y", "c": true})
	})
}
