// Package console is the admin console ingest serves under /console:
// server-rendered pages (html/template, one embedded stylesheet, no
// script) behind the admin token, showing per organization its status,
// flagged contacts, opportunities at risk, the review queue, dead letters
// and a contact's explain page. A login exchanges the admin token for a
// session cookie (session.go); every form carries a CSRF token.
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
)

//go:embed templates/*.html static/*
var files embed.FS

// Base is where ingest mounts the console.
const Base = "/console"

// Options are the console's readers and settings. Tokens and Orgs are
// required; a nil reader makes its pages say they are not available.
type Options struct {
	// Tokens returns the admin tokens in force (they rotate); none: the
	// console is off, as the admin API is.
	Tokens      func() []string
	Orgs        OrgReader
	Sync        SyncStatusReader
	Lists       ListReader
	Reviewer    Reviewer
	Explainer   Explainer
	DeadLetters DeadLetters
	Budgets     BudgetReader
	// SecureCookies marks the cookies Secure even on plain HTTP requests:
	// for a console served behind a proxy that terminates TLS.
	SecureCookies bool
	Log           *slog.Logger
	Now           func() time.Time
}

// Console serves the pages.
type Console struct {
	opts  Options
	pages map[string]*template.Template
	css   []byte
}

// pageNames are the templates, each rendered inside layout.html.
var pageNames = []string{"login", "home", "status", "list", "explain", "deadletters", "off", "error"}

// New parses the embedded templates.
func New(opts Options) (*Console, error) {
	if opts.Tokens == nil || opts.Orgs == nil {
		return nil, errors.New("console: Tokens and Orgs are required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Console{opts: opts, pages: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	css, err := fs.ReadFile(files, "static/console.css")
	if err != nil {
		return nil, err
	}
	c.css = css
	return c, nil
}

// Handler serves the console; mount it at Base.
func (c *Console) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(c.headers)
	r.Get("/static/console.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(c.css)
	})
	r.Group(func(r chi.Router) {
		r.Use(c.on)
		r.Get("/login", c.loginForm)
		r.Post("/login", c.login)
		r.Group(func(r chi.Router) {
			r.Use(c.authenticated)
			r.Get("/", c.home)
			r.Post("/logout", c.logout)
			r.Get("/deadletters", c.deadLetters)
			r.Post("/deadletters/{seq}/redrive", c.redrive)
			r.Route("/orgs/{org}", func(r chi.Router) {
				r.Use(c.orgParam)
				r.Get("/", c.status)
				r.Get("/flagged", c.list(ListFlagged))
				r.Get("/at-risk", c.list(ListAtRisk))
				r.Get("/review", c.list(ListCandidate))
				r.Post("/review/{contact}", c.review)
				r.Get("/deadletters", c.deadLetters)
				r.Post("/deadletters/{seq}/redrive", c.redrive)
				r.Get("/explain", c.explainGo)
				r.Get("/contacts/{contact}", c.explain)
			})
		})
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "There is no such page.")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed here.")
	})
	return r
}

// headers keeps every page to itself: no script, no framing, no other
// origin's resources, nothing cached, no referrer leaving the console.
func (c *Console) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyStart, time.Now())))
	})
}

// on answers every page with "the console is off" while no admin token is
// configured.
func (c *Console) on(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(c.opts.Tokens()) == 0 {
			c.render(w, r, http.StatusNotFound, "off", page{Title: "Console off"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type ctxKey int

const (
	keySession ctxKey = iota
	keyKey
	keyStart
)

// authenticated admits requests with a valid session; others go to the
// login form, and come back where they were going.
func (c *Console) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(sessionCookie)
		var s session
		var key []byte
		if err == nil {
			s, key, err = openSession(ck.Value, c.opts.Tokens(), c.opts.Now())
		}
		if err != nil {
			if r.Method != http.MethodGet {
				c.fail(w, r, http.StatusForbidden, "Your session ended: log in again.")
				return
			}
			http.Redirect(w, r, Base+"/login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
			return
		}
		ctx := context.WithValue(context.WithValue(r.Context(), keySession, s), keyKey, key)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func sessionOf(r *http.Request) (session, []byte) {
	s, _ := r.Context().Value(keySession).(session)
	k, _ := r.Context().Value(keyKey).([]byte)
	return s, k
}

// page is what every template gets.
type page struct {
	Title string
	Org   string
	Tab   string
	CSRF  string
	Who   string
	// Notice is a fixed message chosen by code (never text from a request).
	Notice string
	Data   any
}

// render writes a page with status, filling in the session's parts and
// the time the request took so far (Server-Timing: the browser test holds
// every page to it).
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if s, key := sessionOf(r); key != nil {
		p.CSRF, p.Who = csrfToken(key, s), s.Name
	}
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.opts.Log.Error("console page failed", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if start, ok := r.Context().Value(keyStart).(time.Time); ok {
		ms := float64(time.Since(start).Microseconds()) / 1000
		w.Header().Set("Server-Timing", "page;dur="+strconv.FormatFloat(ms, 'f', 1, 64))
	}
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// fail renders an error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Data: msg})
}

// unavailable is a reader's failure: logged, and said on the page.
func (c *Console) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	c.opts.Log.Error("console: "+what+" failed", "err", err)
	w.Header().Set("Retry-After", "5")
	c.fail(w, r, http.StatusServiceUnavailable, "Reading "+what+" failed; try again in a moment.")
}
