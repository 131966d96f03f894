package dataversetest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
)

// Journal keeps a stand-in's rows in a file, write-through: each change is
// appended, and synced before the stand-in answers it, so a row Dataverse
// said it wrote is there after a crash. Use Journal.Append as
// Options.OnChange, Journal.Sync as Options.Durable, and restore the
// snapshot OpenJournal returns.
type Journal struct {
	mu       sync.Mutex
	f        *os.File
	appended uint64 // entries written

	syncMu sync.Mutex
	synced uint64 // entries on disk
}

type journalEntry struct {
	Set string         `json:"set"`
	ID  string         `json:"id"`
	Row map[string]any `json:"row"`
}

// ReadJournal reads the rows of the journal at path; a missing file has
// none.
func ReadJournal(path string) (Snapshot, error) {
	snap := Snapshot{Rows: map[string]map[string]map[string]any{}}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return snap, fmt.Errorf("open stand-in journal: %w", err)
	default:
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			var e journalEntry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				// A line cut short by a crash was never answered: the
				// entries before it are all there is.
				break
			}
			if e.Row == nil { // deleted
				delete(snap.Rows[e.Set], e.ID)
				continue
			}
			if snap.Rows[e.Set] == nil {
				snap.Rows[e.Set] = map[string]map[string]any{}
			}
			snap.Rows[e.Set][e.ID] = e.Row
		}
		f.Close()
	}
	return snap, nil
}

// OpenJournal reads the journal at path (a missing file is empty), writes
// it back compacted to one entry per row, and opens it for appending.
func OpenJournal(path string) (*Journal, Snapshot, error) {
	snap, err := ReadJournal(path)
	if err != nil {
		return nil, snap, err
	}
	tmp := path + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, snap, fmt.Errorf("compact stand-in journal: %w", err)
	}
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	for set, rows := range snap.Rows {
		for id, row := range rows {
			if err := enc.Encode(journalEntry{Set: set, ID: id, Row: row}); err != nil {
				out.Close()
				return nil, snap, fmt.Errorf("compact stand-in journal: %w", err)
			}
		}
	}
	if err := errors.Join(w.Flush(), out.Sync(), out.Close(), os.Rename(tmp, path)); err != nil {
		return nil, snap, fmt.Errorf("compact stand-in journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, snap, fmt.Errorf("open stand-in journal: %w", err)
	}
	return &Journal{f: f}, snap, nil
}

// Append stores a row as it is after a change (nil: deleted); Sync makes
// it durable. It is called under the stand-in's lock, so it only writes.
func (j *Journal) Append(set, id string, row map[string]any) error {
	b, err := json.Marshal(journalEntry{Set: set, ID: id, Row: row})
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("append to the stand-in journal: %w", err)
	}
	j.appended++
	return nil
}

// Sync returns once every entry appended before it was called is on disk:
// one fsync covers every request waiting at that moment (group commit), so
// concurrent writes do not queue behind one fsync each. Use it as
// Options.Durable.
func (j *Journal) Sync() error {
	j.mu.Lock()
	want := j.appended
	j.mu.Unlock()
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.synced >= want {
		return nil // a sync begun after our append covered it
	}
	j.mu.Lock()
	upTo := j.appended
	j.mu.Unlock()
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync the stand-in journal: %w", err)
	}
	j.synced = upTo
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}
