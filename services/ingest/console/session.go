package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// A session is a signed cookie, nothing kept on the server: every ingest
// replica verifies it alone. Its key is derived from the admin token that
// logged in (HMAC of the token), so rotating the token away ends every
// session made with it; until then it lasts SessionTTL. Each session
// carries a random nonce, from which its CSRF token is derived with the
// same key.

const (
	sessionCookie = "nac_console"
	loginCookie   = "nac_console_login"
	// SessionTTL is how long a login lasts.
	SessionTTL = 8 * time.Hour
	// maxNameLen bounds the name given at login, in bytes, as the admin
	// API bounds a reviewer's.
	maxNameLen = 100
)

// session is what the cookie says, signed.
type session struct {
	Expires int64  `json:"e"` // unix seconds
	Nonce   string `json:"n"`
	Name    string `json:"w"` // who, as given at login
	Token   string `json:"t"` // the fingerprint of the token that logged in
}

func (s session) actor() Actor { return Actor{Name: s.Name, TokenFingerprint: s.Token} }

// sessionKey is the signing key of the sessions of one admin token.
func sessionKey(token string) []byte {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("notatcompany console session key v1"))
	return mac.Sum(nil)
}

// Fingerprint tells admin tokens apart in the audit trail (the new and the
// old one while rotating) and says nothing about them: the admin API's.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}

func sign(key []byte, parts ...string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(strings.Join(parts, "|")))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// newSession is a session for whoever logged in with token, from now.
func newSession(token, name string, now time.Time) (session, string) {
	s := session{Expires: now.Add(SessionTTL).Unix(), Nonce: randomToken(), Name: name, Token: Fingerprint(token)}
	b, _ := json.Marshal(s)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return s, payload + "." + sign(sessionKey(token), "session", payload)
}

var errNoSession = errors.New("no valid session")

// openSession verifies a cookie value against the current admin tokens
// and returns the session and its key.
func openSession(value string, tokens []string, now time.Time) (session, []byte, error) {
	payload, mac, ok := strings.Cut(value, ".")
	if !ok || payload == "" {
		return session{}, nil, errNoSession
	}
	for _, t := range tokens {
		key := sessionKey(t)
		if !hmac.Equal([]byte(mac), []byte(sign(key, "session", payload))) {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(payload)
		var s session
		if err != nil || json.Unmarshal(b, &s) != nil || s.Nonce == "" || s.Token != Fingerprint(t) {
			return session{}, nil, errNoSession
		}
		if now.Unix() >= s.Expires {
			return session{}, nil, errNoSession
		}
		return s, key, nil
	}
	return session{}, nil, errNoSession
}

// csrfToken is the token every form of the session carries.
func csrfToken(key []byte, s session) string { return sign(key, "csrf", s.Nonce) }

// validCSRF compares in constant time.
func validCSRF(key []byte, s session, given string) bool {
	return given != "" && subtle.ConstantTimeCompare([]byte(csrfToken(key, s)), []byte(given)) == 1
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cookie sets a cookie of the console: HttpOnly, SameSite=Strict, Secure
// when the request came over TLS or the console is told it is served
// behind HTTPS; maxAge < 0 deletes it.
func (c *Console) cookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || c.opts.SecureCookies})
}
