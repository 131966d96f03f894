package state

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// The populations (an organization's contacts, the members the feed sent)
// are the denominator of a name's frequency. They are 16 shards each, so
// that a back-fill's replicas do not all contend for one key, and reading
// them at every evaluation was 32 of the 37 messages a name read brought
// back. They are kept in memory instead: a read of them reflects every
// count this replica moved, and every other replica's move more than
// ScopeLease old. A population a moment behind weighs a name the same to
// the hundredth of a bit the evidence shows, so no decision waits on it,
// and they are not among what a decision checks after publishing.

// populations caches the population shards of the names bucket.
type populations struct {
	direct *directGets
	now    func() time.Time

	mu       sync.Mutex
	shards   map[string]shard // names key (ot.<org>.<n>, mt.<n>) → count
	sums     map[string]int   // by population (ot.<org>, mt): its shards' sum
	pos      uint64           // the names stream position they reflect
	verified time.Time        // when the read that brought them up to pos was sent
	moved    bool             // this replica moved a shard since
	reading  chan struct{}    // closed when the read in flight ends
	readErr  error
}

type shard struct {
	seq   uint64
	count int
}

func newPopulations(direct *directGets) *populations {
	return &populations{direct: direct, now: time.Now, shards: map[string]shard{}, sums: map[string]int{}}
}

// populationSubjects are the shards of every population.
var populationSubjects = []string{namesSubject("ot.*.*"), namesSubject("mt.*")}

// isPopulationKey reports whether a names key is a population shard.
func isPopulationKey(key string) bool {
	return strings.HasPrefix(key, "ot.") || strings.HasPrefix(key, "mt.")
}

// movedHere notes that this replica wrote a shard: the next read reads.
func (p *populations) movedHere() {
	p.mu.Lock()
	p.moved = true
	p.mu.Unlock()
}

// of returns the population of org's contacts and all members, as of a
// read at most ScopeLease old and after every shard this replica moved.
func (p *populations) of(ctx context.Context, org string) (int, error) {
	for {
		p.mu.Lock()
		fresh := !p.moved && !p.verified.IsZero() && p.now().Sub(p.verified) < ScopeLease
		if fresh {
			n := p.sumLocked(org)
			p.mu.Unlock()
			return n, nil
		}
		if wait := p.reading; wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return 0, fmt.Errorf("population: %w", ctx.Err())
			}
			p.mu.Lock()
			err := p.readErr
			p.mu.Unlock()
			if err != nil {
				return 0, err
			}
			continue
		}
		done := make(chan struct{})
		p.reading, p.moved = done, false
		since := p.pos + 1
		p.mu.Unlock()

		sent := p.now()
		msgs, pos, err := p.direct.lastFor(ctx, namesStream, populationSubjects, since)
		p.mu.Lock()
		if err == nil {
			for _, m := range msgs {
				k := namesKeyOf(m.Subject)
				cur, ok := p.shards[k]
				if ok && cur.seq >= m.Seq {
					continue
				}
				c := 0
				if !m.Deleted {
					c = count(m)
				}
				p.shards[k] = shard{seq: m.Seq, count: c}
				p.sums[populationOf(k)] += c - cur.count
			}
			for _, at := range pos {
				p.pos = max(p.pos, uint64(at))
			}
			p.verified = sent
		} else {
			p.moved = true // read again next time
			err = fmt.Errorf("read the populations: %w", err)
		}
		p.reading, p.readErr = nil, err
		close(done)
		p.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
}

// sumLocked is org's contacts and the members.
func (p *populations) sumLocked(org string) int {
	return p.sums["ot."+bus.Token(org)] + p.sums["mt"]
}

// populationOf is the population a shard key counts: ot.<org> or mt.
func populationOf(key string) string {
	return key[:strings.LastIndexByte(key, '.')]
}
