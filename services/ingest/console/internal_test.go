package console

import (
	"strings"
	"testing"
	"time"
)

func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"/console/orgs/x/":       "/console/orgs/x/",
		"":                       "",
		"/admin/orgs":            "",
		"https://evil.example/":  "",
		"//evil.example/console": "",
		"/console":               "",
		"/console/\\evil":        "",
		"/console/a\r\nSet-X: y": "",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestOpenSession(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s, value := newSession("token-one-0123456789", "Sam", now)
	tests := []struct {
		name   string
		value  string
		tokens []string
		at     time.Time
		ok     bool
	}{
		{"valid", value, []string{"token-one-0123456789"}, now, true},
		{"valid while rotating", value, []string{"token-two-0123456789", "token-one-0123456789"}, now, true},
		{"token rotated away", value, []string{"token-two-0123456789"}, now, false},
		{"expired", value, []string{"token-one-0123456789"}, now.Add(SessionTTL), false},
		{"no signature", strings.Split(value, ".")[0], []string{"token-one-0123456789"}, now, false},
		{"empty", "", []string{"token-one-0123456789"}, now, false},
		{"signature of another payload", "e30." + strings.Split(value, ".")[1], []string{"token-one-0123456789"}, now, false},
		{"no tokens", value, nil, now, false},
	}
	for _, tt := range tests {
		got, key, err := openSession(tt.value, tt.tokens, tt.at)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want ok=%v", tt.name, err, tt.ok)
			continue
		}
		if tt.ok && (got != s || !validCSRF(key, got, csrfToken(key, s)) || validCSRF(key, got, "") || validCSRF(key, got, csrfToken(key, session{Nonce: "other"}))) {
			t.Errorf("%s: session %+v, want %+v with its own CSRF token only", tt.name, got, s)
		}
	}
}
