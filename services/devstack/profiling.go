package devstack

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	rpprof "runtime/pprof"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/notatcompany/notatcompany/services/shared/httpserver"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
)

// Profiling: with NAC_PPROF_ADDR set, the devstack serves net/http/pprof
// there and labels the work of each part ("service" = nats-server, ingest,
// validator, writer, standin), so that a CPU profile of the one process
// says what each service costs (`go tool pprof -tags`), and the broker's
// connections at /debug/nats/connz. Off by default.

// labeler runs work under a part's label when profiling is on.
type labeler struct{ on bool }

// do runs f with goroutines it starts labelled service=name.
func (l labeler) do(name string, f func()) {
	if !l.on {
		f()
		return
	}
	rpprof.Do(context.Background(), rpprof.Labels("service", name), func(context.Context) { f() })
}

// around runs f labelled service=name: a service's NATS connection (its
// read and write loops) and the goroutines its build starts.
func (l labeler) around(name string) func(func()) {
	return func(f func()) { l.do(name, f) }
}

// worker labels a service's consume loop.
func (l labeler) worker(name string, w func(context.Context) error) func(context.Context) error {
	if !l.on {
		return w
	}
	return func(ctx context.Context) error {
		var err error
		rpprof.Do(ctx, rpprof.Labels("service", name), func(ctx context.Context) { err = w(ctx) })
		return err
	}
}

// parts labels the workers of a service's build.
func (l labeler) parts(name string) func(lifecycle.Parts, error) (lifecycle.Parts, error) {
	return func(p lifecycle.Parts, err error) (lifecycle.Parts, error) {
		for i, w := range p.Workers {
			p.Workers[i] = l.worker(name, w)
		}
		return p, err
	}
}

// handler labels the requests h serves.
func (l labeler) handler(name string, h http.Handler) http.Handler {
	if !l.on {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rpprof.Do(r.Context(), rpprof.Labels("service", name), func(context.Context) { h.ServeHTTP(w, r) })
	})
}

func pprofServer(addr string, ns *server.Server) (*httpserver.Server, error) {
	mux := http.NewServeMux()
	// The broker's connections with their message counts (nats-server's
	// monitoring /connz), so that a benchmark can say which service sends
	// how many messages per event.
	mux.HandleFunc("/debug/nats/connz", func(w http.ResponseWriter, r *http.Request) {
		cz, err := ns.Connz(&server.ConnzOptions{Limit: 1024, SubscriptionsDetail: r.URL.Query().Get("subs") == "detail"})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cz)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return httpserver.Listen(addr, mux)
}
