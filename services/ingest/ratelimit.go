package ingest

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// A profile source validates its endpoint once in a while (LinkedIn: every
// two hours); a client asking more often than this is not one.
const (
	challengeRate    = rate.Limit(1) // per second and client address
	challengeBurst   = 10
	challengeClients = 4096 // addresses with a bucket of their own
)

// clientLimiter is a token bucket per client address. The map is bounded:
// when it is full, buckets idle long enough to be full again are dropped
// (they are the same as new ones), and if none is, every further address
// shares one overflow bucket, so many addresses buy an attacker no more
// than one.
type clientLimiter struct {
	limit   rate.Limit
	burst   int
	max     int
	refill  time.Duration // how long an idle bucket takes to be full
	mu      sync.Mutex
	clients map[string]*clientBucket
	shared  *rate.Limiter
}

type clientBucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newClientLimiter(limit rate.Limit, burst, max int) *clientLimiter {
	return &clientLimiter{
		limit: limit, burst: burst, max: max,
		refill:  time.Duration(float64(burst) / float64(limit) * float64(time.Second)),
		clients: map[string]*clientBucket{},
		shared:  rate.NewLimiter(limit, burst),
	}
}

// allow takes a token from client's bucket; when there is none, it returns
// how long until there is.
func (l *clientLimiter) allow(client string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	lim := l.bucket(client, now)
	l.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *clientLimiter) bucket(client string, now time.Time) *rate.Limiter {
	if b, ok := l.clients[client]; ok {
		b.last = now
		return b.lim
	}
	if len(l.clients) >= l.max {
		for k, b := range l.clients {
			if now.Sub(b.last) >= l.refill {
				delete(l.clients, k)
			}
		}
	}
	if len(l.clients) >= l.max {
		return l.shared
	}
	b := &clientBucket{lim: rate.NewLimiter(l.limit, l.burst), last: now}
	l.clients[client] = b
	return b.lim
}

// clientAddress is the address the request came from. Forwarding headers
// are not trusted: anyone can write them.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// rateLimited answers 429 with Retry-After when the client has asked too
// often.
func (s *Service) rateLimited(w http.ResponseWriter, r *http.Request, l *clientLimiter) bool {
	ok, wait := l.allow(clientAddress(r), s.now())
	if ok {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	problem.Write(w, r, problem.New(http.StatusTooManyRequests, "rate-limited",
		"too many challenge requests from this address; retry later"))
	return true
}
