package dataverse_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// A client secret mounted from a file is read again before each token
// fetch: after the Secret is rotated, the next token is fetched with the new
// secret, without a restart.
func TestClientSecretFileIsReadAgainBeforeEachToken(t *testing.T) {
	var mu sync.Mutex
	var secrets []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		secret := r.PostForm.Get("client_secret")
		if _, pw, ok := r.BasicAuth(); ok { // x/oauth2 sends it in the header first
			secret = pw
		}
		mu.Lock()
		secrets = append(secrets, secret)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		// Shorter than x/oauth2's 10 s expiry margin: every call fetches.
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 1})
	})
	mux.HandleFunc("PATCH /", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	file := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(file, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := dataverse.New(context.Background(), srv.URL, dataverse.Credentials{
		TokenURL: srv.URL + "/token", ClientID: "id", ClientSecret: "old", ClientSecretFile: file,
	}, dataverse.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	write := func() {
		t.Helper()
		if err := c.PatchFlag(context.Background(), dataverse.FlagWrite{ContactID: contactA, Column: "nac_flag", Value: 1}); err != nil {
			t.Fatalf("PatchFlag: %v", err)
		}
	}
	write()
	if err := os.WriteFile(file, []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write()
	if err := os.Remove(file); err != nil { // mid-rotation: the last secret stays
		t.Fatal(err)
	}
	write()
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"old", "new", "new"}; !slices.Equal(secrets, want) {
		t.Errorf("token fetched with secrets %q, want %q", secrets, want)
	}
}
