package provision

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

type stringsReader struct{ *strings.Reader }

func newReader(s string) *stringsReader { return &stringsReader{strings.NewReader(s)} }

func (r *stringsReader) orNil() io.Reader {
	if r == nil {
		return nil
	}
	return r
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func token(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.PostForm(base+dataversetest.TokenPath, url.Values{"grant_type": {"client_credentials"},
		"client_id": {clientID}, "client_secret": {clientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %v", err)
	}
	return tok.AccessToken
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

func actions(res Result) map[Action]int {
	out := map[Action]int{}
	for _, it := range res.Items {
		out[it.Action]++
	}
	return out
}
