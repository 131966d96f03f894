// Package httpserver runs an http.Server on a listener bound up front, so
// that a bad address fails at start and ":0" works in tests.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Server is a listening HTTP server.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen binds addr for h.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      55 * time.Second, // Dataverse gives up after 60 s
			IdleTimeout:       120 * time.Second,
		},
	}, nil
}

// Wrap puts wrap around the server's handler; call it before Serve.
func (s *Server) Wrap(wrap func(http.Handler) http.Handler) { s.srv.Handler = wrap(s.srv.Handler) }

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Shutdown; it returns nil after a clean shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", s.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting and waits for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Close releases a server that never served: its listener is closed.
func (s *Server) Close() error {
	_ = s.srv.Close()
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
