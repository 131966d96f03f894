package state

import (
	"context"
	"fmt"
	"strings"
)

// Reads for many evaluations at once: each reads what a group of contacts
// needs from one stream in one request (see direct.go), and returns with
// what it found a Dep for every subject or filter it read. After a
// decision is published, Changed asks each stream once what changed
// since: the check that the decision still stands costs a request per
// stream read, answered with nothing when nothing changed.

// Dep is one subject or filter of a stream that was read, and the position
// the read was complete up to.
type Dep struct {
	Stream string
	Filter string
	Pos    Pos
	// Rev is the revision the subject held (0: none), for an exact one.
	Rev uint64
}

// RowRef names a row of a table in an organization.
type RowRef = ContactRef

// RowsOf reads the rows of table with these refs, in one request: the
// rows stored, and what was read for each ref.
func (s *Store) RowsOf(ctx context.Context, table string, refs []RowRef) (map[RowRef]*Row, map[RowRef]Dep, error) {
	kv, ok := s.rows[table]
	if !ok {
		return nil, nil, fmt.Errorf("table %s is not kept", table)
	}
	stream, base := "KV_"+kv.Bucket(), "$KV."+kv.Bucket()+"."
	bySubject := make(map[string]RowRef, len(refs))
	subjects := make([]string, 0, len(refs))
	for _, r := range refs {
		subj := base + rowKey(r.Org, table, r.ID)
		if _, dup := bySubject[subj]; !dup {
			bySubject[subj] = r
			subjects = append(subjects, subj)
		}
	}
	msgs, pos, err := s.direct.lastFor(ctx, stream, subjects, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("read %d %s rows: %w", len(subjects), table, err)
	}
	deps := make(map[RowRef]Dep, len(subjects))
	for i, subj := range subjects {
		deps[bySubject[subj]] = Dep{Stream: stream, Filter: subj, Pos: pos[i]}
	}
	rows := make(map[RowRef]*Row, len(msgs))
	for _, m := range msgs {
		ref, ok := bySubject[m.Subject]
		if !ok || m.Deleted {
			continue
		}
		row, err := decodeRow(m.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("decode %s row: %w", table, err)
		}
		rows[ref] = row
		d := deps[ref]
		d.Rev = m.Seq
		deps[ref] = d
	}
	return rows, deps, nil
}

// LastMessages reads the last message of each of subjects of stream (one
// that allows direct gets), in one request.
func (s *Store) LastMessages(ctx context.Context, stream string, subjects []string) ([]Msg, error) {
	msgs, _, err := s.direct.lastFor(ctx, stream, subjects, 0)
	return msgs, err
}

// Changed reports, for each dep, whether its subject, or a subject under
// its filter, holds a message newer than the read now (a delete too): one
// request per stream and read position.
func (s *Store) Changed(ctx context.Context, deps []Dep) ([]bool, error) {
	type readAt struct {
		stream string
		pos    Pos
	}
	groups := map[readAt][]int{}
	for i, d := range deps {
		k := readAt{d.Stream, d.Pos}
		groups[k] = append(groups[k], i)
	}
	changed := make([]bool, len(deps))
	for k, idx := range groups {
		exact := map[string][]int{}
		under := map[string][]int{} // prefix + "." → deps
		var filters []string
		for _, i := range idx {
			f := deps[i].Filter
			if p, ok := strings.CutSuffix(f, ">"); ok {
				if _, seen := under[p]; !seen {
					filters = append(filters, f)
				}
				under[p] = append(under[p], i)
				continue
			}
			if _, seen := exact[f]; !seen {
				filters = append(filters, f)
			}
			exact[f] = append(exact[f], i)
		}
		msgs, _, err := s.direct.lastFor(ctx, k.stream, filters, k.pos.Since())
		if err != nil {
			return nil, fmt.Errorf("check %s for changes: %w", k.stream, err)
		}
		for _, m := range msgs {
			if m.Seq < k.pos.Since() {
				continue
			}
			for _, i := range exact[m.Subject] {
				changed[i] = true
			}
			for j := range len(m.Subject) {
				if m.Subject[j] == '.' {
					for _, i := range under[m.Subject[:j+1]] {
						changed[i] = true
					}
				}
			}
		}
	}
	return changed, nil
}
