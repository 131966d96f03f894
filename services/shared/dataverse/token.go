package dataverse

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
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

// RateLimit is what a response said about the service protection limits
// (Microsoft Learn, "Service protection API limits", section "HTTP
// Response headers": https://learn.microsoft.com/power-apps/developer/data-platform/api-limits#http-response-headers;
// "Send parallel requests", section "Optimum degree of parallelism (DOP)":
// https://learn.microsoft.com/power-apps/developer/data-platform/send-parallel-requests).
type RateLimit struct {
	// BurstRemaining is x-ms-ratelimit-burst-remaining-xrm-requests, the
	// requests left on this connection's web server in the 300 s window,
	// or -1.
	BurstRemaining int
	// TimeRemaining is x-ms-ratelimit-time-remaining-xrm-requests, the
	// combined execution time left to every connection of the user in the
	// window, or -1. Dataverse sends seconds with a thousands separator
	// and two decimals ("1,200.00" in the response Microsoft Learn shows
	// in "Use PowerShell and Visual Studio Code with the Dataverse Web
	// API", section "Debug using Fiddler").
	TimeRemaining time.Duration
	// DOPHint is x-ms-dop-hint, the degree of parallelism Dataverse
	// recommends for the environment, or 0.
	DOPHint int
	// RetryAfter is set on a 429.
	RetryAfter time.Duration
}

// Present reports whether the response said anything about the limits.
func (rl RateLimit) Present() bool {
	return rl.BurstRemaining >= 0 || rl.TimeRemaining >= 0 || rl.DOPHint > 0 || rl.RetryAfter > 0
}

// ReadRateLimit reads the service protection headers of a response with
// status; what is absent or unreadable is left out.
func ReadRateLimit(status int, h http.Header) RateLimit {
	rl := RateLimit{BurstRemaining: -1, TimeRemaining: -1}
	if v, err := strconv.Atoi(strings.TrimSpace(h.Get("x-ms-ratelimit-burst-remaining-xrm-requests"))); err == nil && v >= 0 {
		rl.BurstRemaining = v
	}
	if v := strings.ReplaceAll(strings.TrimSpace(h.Get("x-ms-ratelimit-time-remaining-xrm-requests")), ",", ""); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 && secs < 1e9 {
			rl.TimeRemaining = time.Duration(secs * float64(time.Second))
		}
	}
	if v, err := strconv.Atoi(strings.TrimSpace(h.Get("x-ms-dop-hint"))); err == nil && v > 0 {
		rl.DOPHint = v
	}
	if status == http.StatusTooManyRequests {
		// A 429 without a usable Retry-After still pauses: Dataverse
		// always sends one, so its absence is no reason to go on.
		rl.RetryAfter = cmp.Or(retryAfter(h), time.Second)
	}
	return rl
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
	if rl := ReadRateLimit(resp.StatusCode, resp.Header); rl.Present() {
		t.observe(rl)
	}
}

// retryAfter reads Retry-After in seconds (Dataverse does not send dates).
func retryAfter(h http.Header) time.Duration {
	if secs, err := strconv.Atoi(h.Get("Retry-After")); err == nil && secs > 0 {
		// A day at most: more would overflow, and no pause is that long.
		return time.Duration(min(secs, 86400)) * time.Second
	}
	return 0
}
