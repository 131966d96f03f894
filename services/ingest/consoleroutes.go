package ingest

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/notatcompany/notatcompany/services/ingest/console"
)

// WithConsole serves the admin console under /console beside api (the
// handler of Routes), behind the admin tokens in force: opts' readers are
// the admin API's.
func (s *Service) WithConsole(api http.Handler, opts console.Options) (http.Handler, error) {
	opts.Tokens = func() []string { return s.creds.Load().adminTokens }
	opts.SecureCookies = s.cfg.ConsoleSecureCookies
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
