package dataverse_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"mime"
	"mime/multipart"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// craftedIDs are contact ids a decision could carry if anyone could publish
// one: each would reshape the request line, the path or a $batch part.
var craftedIDs = []string{
	"",
	"not-a-guid",
	contactB + ") HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"firstname\":\"x\"}\r\n--batch_x\r\n",
	contactA + "\r\n",
	contactA + "\n",
	"'" + contactA + "'",
	`"` + contactA + `"`,
	contactA + "/../contacts(" + contactB + ")",
	contactA + ")",
	contactA + "?$select=firstname",
	"/contacts(x)",
	"contacts(" + contactB + ")",
	"emailaddress1='x@example.com'",
	"{" + contactA + "}",
	"urn:uuid:" + contactA,
	strings.ReplaceAll(contactA, "-", ""),
	contactA[:35] + "g",
	contactA[:35] + "１",
}

func (e *env) requestCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.requests) + e.tokens
}

func isInvalid(err error) bool { return errors.Is(err, dataverse.ErrInvalidRequest) }

func TestCraftedContactIDsAreNeverSent(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	before := e.standin.Snapshot()
	for _, id := range craftedIDs {
		err := c.PatchFlag(context.Background(), dataverse.FlagWrite{ContactID: id, Column: "nac_flag", Value: 1, Tag: "notatcompany"})
		if !isInvalid(err) {
			t.Errorf("PatchFlag(%q) = %v, want ErrInvalidRequest", id, err)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("error of %q carries a line break: %q", id, err)
		}
		results, err := c.Batch(context.Background(), []dataverse.FlagWrite{{ContactID: id, Column: "nac_flag", Value: 1}})
		if err != nil || len(results) != 1 || !isInvalid(results[0]) {
			t.Errorf("Batch(%q) = %v, %v; want one ErrInvalidRequest", id, results, err)
		}
	}
	if n := e.requestCount(); n != 0 {
		t.Errorf("%d requests reached the stand-in, want none", n)
	}
	if len(e.standin.Received()) != 0 || !reflect.DeepEqual(e.standin.Snapshot(), before) {
		t.Error("the stand-in's rows changed")
	}
}

func TestBatchSendsOnlyTheValidWrites(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	results, err := c.Batch(context.Background(), []dataverse.FlagWrite{
		{ContactID: craftedIDs[2], Column: "nac_flag", Value: 1},
		{ContactID: contactA, Column: "nac_flag", Value: 1},
		{ContactID: contactB, Column: "nac_flag) HTTP/1.1", Value: 1},
	})
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	if !isInvalid(results[0]) || results[1] != nil || !isInvalid(results[2]) {
		t.Fatalf("results = %v, want invalid, written, invalid", results)
	}
	got := e.standin.Received()
	if len(got) != 1 || got[0].ID != contactA {
		t.Fatalf("stand-in applied %+v, want only %s", got, contactA)
	}
	if row, _ := e.standin.Row("contacts", contactB); row["firstname"] != nil || row["nac_flag"] != nil {
		t.Errorf("contact B changed: %v", row)
	}
}

func TestCraftedColumnsAndEntitySetsAreNeverSent(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	for _, col := range []string{"", "Nac_Flag", "nac_flag\r\n", "nac flag", "firstname,emailaddress1", "nac-flag", "1abc", strings.Repeat("a", 129)} {
		if err := c.PatchFlag(context.Background(), dataverse.FlagWrite{ContactID: contactA, Column: col, Value: 1}); !isInvalid(err) {
			t.Errorf("PatchFlag column %q = %v, want ErrInvalidRequest", col, err)
		}
		if _, err := c.GetRow(context.Background(), "contacts", contactA, "nac_flag", col); !isInvalid(err) {
			t.Errorf("GetRow column %q = %v, want ErrInvalidRequest", col, err)
		}
	}
	for _, set := range []string{"", "contacts(" + contactB + ")", "contacts/", "../accounts", "contacts?x=1", "Contacts"} {
		if _, err := c.GetRow(context.Background(), set, contactA); !isInvalid(err) {
			t.Errorf("GetRow entity set %q = %v, want ErrInvalidRequest", set, err)
		}
	}
	for _, id := range craftedIDs {
		if _, err := c.GetRow(context.Background(), "contacts", id); !isInvalid(err) {
			t.Errorf("GetRow id %q = %v, want ErrInvalidRequest", id, err)
		}
	}
	if n := e.requestCount(); n != 0 {
		t.Errorf("%d requests reached the stand-in, want none", n)
	}
}

func TestValidNamesStillWork(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	upper := strings.ToUpper(contactA)
	if err := c.PatchFlag(context.Background(), dataverse.FlagWrite{ContactID: upper, Column: "nac_flag", Value: 1}); err != nil && isInvalid(err) {
		t.Errorf("an upper-case GUID was refused: %v", err)
	}
	if _, err := c.GetRow(context.Background(), "contacts", contactA, "_parentcustomerid_value", "nac_flag"); err != nil {
		t.Errorf("GetRow with a lookup column: %v", err)
	}
}

func TestEncodeBatchRefusesAnInvalidWrite(t *testing.T) {
	var buf bytes.Buffer
	_, err := dataverse.EncodeBatch(&buf, []dataverse.FlagWrite{{ContactID: contactA, Column: "nac_flag"}, {ContactID: craftedIDs[2], Column: "nac_flag"}})
	if !isInvalid(err) {
		t.Fatalf("EncodeBatch = %v, want ErrInvalidRequest", err)
	}
}

// FuzzFlagWrite: whatever the contact id and column, a write either fails
// validation (and cannot be encoded) or encodes as exactly one part whose
// request line is the PATCH of that one contact.
func FuzzFlagWrite(f *testing.F) {
	for _, id := range append(craftedIDs, contactA) {
		f.Add(id, "nac_flag")
	}
	f.Add(contactA, "nac_flag\r\nX: y")
	f.Fuzz(func(t *testing.T, id, column string) {
		w := dataverse.FlagWrite{ContactID: id, Column: column, Value: 1, Tag: "notatcompany"}
		var buf bytes.Buffer
		ct, err := dataverse.EncodeBatch(&buf, []dataverse.FlagWrite{w})
		if verr := w.Validate(); verr != nil {
			if !isInvalid(verr) || !isInvalid(err) {
				t.Fatalf("Validate = %v, EncodeBatch = %v: want both ErrInvalidRequest", verr, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("EncodeBatch of a valid write: %v", err)
		}
		_, params, _ := mime.ParseMediaType(ct)
		mr := multipart.NewReader(&buf, params["boundary"])
		part, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.ReadRequest(bufio.NewReader(part))
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		if req.Method != http.MethodPatch || req.URL.Path != dataverse.APIPath+"/contacts("+id+")" || req.URL.RawQuery != "tag=notatcompany" {
			t.Fatalf("request %s %s?%s", req.Method, req.URL.Path, req.URL.RawQuery)
		}
		if _, err := mr.NextPart(); err == nil {
			t.Fatal("a second part")
		}
	})
}

func TestIsGUID(t *testing.T) {
	for s, want := range map[string]bool{
		"6d81597f-0f9f-e711-8122-000d3aa2331c":   true,
		"6D81597F-0F9F-E711-8122-000D3AA2331C":   true,
		"6d81597f0f9fe7118122000d3aa2331c":       false,
		"{6d81597f-0f9f-e711-8122-000d3aa2331c}": false,
		"6d81597f-0f9f-e711-8122-000d3aa2331":    false,
		"":                                       false,
	} {
		if got := dataverse.IsGUID(s); got != want {
			t.Errorf("IsGUID(%q) = %v, want %v", s, got, want)
		}
	}
}
