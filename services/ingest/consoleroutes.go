package ingest

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/notatcompany/notatcompany/services/ingest/console"
)

// WithConsole serves the admin console under /console beside api (the
// handler of Routes), behind the admin tokens in force. Its readers are the
// admin API's: opts' own, and those this ingest has for dead letters and
// evaluations, which the console reads and acts through.
func (s *Service) WithConsole(api http.Handler, opts console.Options) (http.Handler, error) {
	opts.Tokens = func() []string { return s.creds.Load().adminTokens }
	opts.SecureCookies = s.cfg.ConsoleSecureCookies
	// The pages of what this ingest's admin API has readers for.
	if s.deadLetters != nil && opts.DeadLetters == nil {
		opts.DeadLetters = consoleDeadLetters{s.deadLetters}
	}
	if s.explain != nil && opts.Lists == nil {
		a := consoleAdmin{api: api, tokens: opts.Tokens}
		opts.Lists, opts.Reviewer, opts.Explainer = a, a, a
	}
	if opts.Log == nil {
		opts.Log = s.log
	}
	c, err := console.New(opts)
	if err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	r.Mount(console.Base, c.Handler())
	r.Get(console.Base, http.RedirectHandler(console.Base+"/", http.StatusMovedPermanently).ServeHTTP)
	r.Mount("/", api)
	return r, nil
}
