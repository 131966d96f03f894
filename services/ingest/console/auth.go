package console

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"unicode"

	"github.com/go-chi/chi/v5"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// maxFormBytes bounds a form's body.
const maxFormBytes = 16 << 10

type loginData struct {
	Next  string
	Error string
	Name  string
}

// loginForm shows the form, with a fresh login CSRF token: the form's
// hidden field must equal the cookie set here (a double submit, since no
// session key exists before the login).
func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	c.showLogin(w, r, http.StatusOK, loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, d loginData) {
	tok := randomToken()
	c.cookie(w, r, loginCookie, tok, Base+"/login", 600)
	c.render(w, r, status, "login", page{Title: "Log in", CSRF: tok, Data: d})
}

// login exchanges the admin token for a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !c.readForm(w, r) {
		return
	}
	d := loginData{Next: safeNext(r.PostForm.Get("next")), Name: r.PostForm.Get("name")}
	ck, err := r.Cookie(loginCookie)
	if given := r.PostForm.Get("csrf"); err != nil || given == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(given)) != 1 {
		d.Error = "The form expired or did not come from this console; try again."
		c.showLogin(w, r, http.StatusForbidden, d)
		return
	}
	name := strings.TrimSpace(d.Name)
	switch {
	case name == "" || len(name) > maxNameLen || strings.ContainsFunc(name, func(c rune) bool { return !unicode.IsPrint(c) }):
		d.Error = "Give your name (at most 100 bytes, printable characters): the audit trail records who approved, rejected or redrove what."
		c.showLogin(w, r, http.StatusBadRequest, d)
		return
	}
	token := r.PostForm.Get("token")
	var matched string
	for _, t := range c.opts.Tokens() {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 && token != "" {
			matched = t
		}
	}
	if matched == "" {
		d.Error = "That is not the admin token."
		c.showLogin(w, r, http.StatusUnauthorized, d)
		return
	}
	s, value := newSession(matched, name, c.opts.Now())
	c.cookie(w, r, sessionCookie, value, Base, int(SessionTTL.Seconds()))
	c.cookie(w, r, loginCookie, "", Base+"/login", -1)
	c.opts.Log.Info("console login", "token", s.Token)
	next := d.Next
	if next == "" {
		next = Base + "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if !c.checkForm(w, r) {
		return
	}
	c.cookie(w, r, sessionCookie, "", Base, -1)
	http.Redirect(w, r, Base+"/login", http.StatusSeeOther)
}

// readForm parses a form body of bounded size, answering 400 itself.
func (c *Console) readForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return false
	}
	// A form posted from another origin is refused whatever it carries.
	if o := r.Header.Get("Origin"); o != "" && o != "null" && !sameOrigin(o, r) {
		c.fail(w, r, http.StatusForbidden, "The form did not come from this console.")
		return false
	}
	return true
}

// checkForm reads a form of a session and checks its CSRF token.
func (c *Console) checkForm(w http.ResponseWriter, r *http.Request) bool {
	if !c.readForm(w, r) {
		return false
	}
	s, key := sessionOf(r)
	if !validCSRF(key, s, r.PostForm.Get("csrf")) {
		c.fail(w, r, http.StatusForbidden, "The form expired or did not come from this console; reload the page and try again.")
		return false
	}
	return true
}

func sameOrigin(origin string, r *http.Request) bool {
	o, ok := strings.CutPrefix(origin, "http://")
	if !ok {
		o, ok = strings.CutPrefix(origin, "https://")
	}
	return ok && o == r.Host
}

// safeNext keeps a redirect after login inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Base+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return ""
	}
	return next
}

// orgParam checks {org}: a GUID, lower-cased.
func (c *Console) orgParam(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !dataverse.IsGUID(strings.ToLower(chi.URLParam(r, "org"))) {
			c.fail(w, r, http.StatusBadRequest, "The organization is named by its GUID.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func orgOf(r *http.Request) string { return strings.ToLower(chi.URLParam(r, "org")) }
