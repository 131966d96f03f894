package dataverse

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenCache holds the application user's access token: fetched once,
// reused until a minute before it expires, and dropped on a 401 so that the
// next request fetches a fresh one (a token revoked or expired early).
type tokenCache struct {
	ctx        context.Context
	cfg        *clientcredentials.Config
	onFetch    func()
	secretFile string // read again before each fetch; "" for a fixed secret

	mu  sync.Mutex
	tok *oauth2.Token
}

const tokenMargin = time.Minute

func (c *tokenCache) token() (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && (c.tok.Expiry.IsZero() || time.Until(c.tok.Expiry) > tokenMargin) {
		return c.tok, nil
	}
	if c.secretFile != "" {
		// A file that cannot be read now (mid-rotation) leaves the last
		// secret in use; a wrong one shows as the fetch's error.
		if b, err := os.ReadFile(c.secretFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			c.cfg.ClientSecret = string(bytes.TrimSpace(b))
		}
	}
	tok, err := c.cfg.Token(c.ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch access token: %w", err)
	}
	c.tok = tok
	if c.onFetch != nil {
		c.onFetch()
	}
	return tok, nil
}

// invalidate drops tok if it is still the cached one.
func (c *tokenCache) invalidate(tok *oauth2.Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok == tok {
		c.tok = nil
	}
}

// authTransport authorizes each request, retries once with a fresh token on
// 401, and reports the service protection headers Dataverse sends.
type authTransport struct {
	tokens  *tokenCache
	base    http.RoundTripper
	observe func(RateLimit)
}

// RateLimit is what a response said about the service protection limits.
type RateLimit struct {
	// BurstRemaining is x-ms-ratelimit-burst-remaining-xrm-requests, or -1.
	BurstRemaining int
	// RetryAfter is set on a 429.
	RetryAfter time.Duration
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		tok, err := t.tokens.token()
		if err != nil {
			return nil, err
		}
		r := req.Clone(req.Context())
		if attempt > 0 && req.GetBody != nil {
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		tok.SetAuthHeader(r)
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		t.report(resp)
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 || (req.Body != nil && req.GetBody == nil) {
			return resp, nil
		}
		resp.Body.Close()
		t.tokens.invalidate(tok)
	}
}

func (t *authTransport) report(resp *http.Response) {
	if t.observe == nil {
		return
	}
	rl := RateLimit{BurstRemaining: -1}
	if v, err := strconv.Atoi(resp.Header.Get("x-ms-ratelimit-burst-remaining-xrm-requests")); err == nil {
		rl.BurstRemaining = v
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		rl.RetryAfter = retryAfter(resp.Header)
	}
	if rl.BurstRemaining >= 0 || resp.StatusCode == http.StatusTooManyRequests {
		t.observe(rl)
	}
}

// retryAfter reads Retry-After in seconds (Dataverse does not send dates).
func retryAfter(h http.Header) time.Duration {
	if secs, err := strconv.Atoi(h.Get("Retry-After")); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	return 0
}
