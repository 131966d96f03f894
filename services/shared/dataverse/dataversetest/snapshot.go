package dataversetest

import (
	"maps"
	"net/http"
	"strings"
)

// Snapshot is the stand-in's data, to persist across devstack restarts.
type Snapshot struct {
	Rows map[string]map[string]map[string]any `json:"rows"`
}

// Snapshot returns a copy of every row.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Rows: map[string]map[string]map[string]any{}}
	for set, rows := range s.rows {
		snap.Rows[set] = map[string]map[string]any{}
		for id, cols := range rows {
			snap.Rows[set][id] = maps.Clone(cols)
		}
	}
	return snap
}

// Restore loads rows from a snapshot.
func (s *Server) Restore(snap Snapshot) {
	for set, rows := range snap.Rows {
		for id, cols := range rows {
			s.Seed(set, id, cols)
		}
	}
}

// persistLocked hands the row as it will be after cols (nil cols: after a
// delete) to OnChange. When that fails it answers 503 and returns false.
// Customization rows are left out: provisioning declares them again at
// every start.
func (s *Server) persistLocked(w http.ResponseWriter, set, id string, cols map[string]any) bool {
	if s.opts.OnChange == nil || customizationSets[set] {
		return true
	}
	var after map[string]any
	if cols != nil {
		after = maps.Clone(s.rows[set][id])
		if after == nil {
			after = map[string]any{idColumn(set): id}
		}
		maps.Copy(after, cols)
	}
	if err := s.opts.OnChange(set, id, after); err != nil {
		odataError(w, http.StatusServiceUnavailable, "0x80044151", "The change could not be stored: "+err.Error())
		return false
	}
	return true
}

func (s *Server) upsert(set, id string, cols map[string]any) {
	if s.rows[set] == nil {
		s.rows[set] = map[string]map[string]any{}
	}
	row := s.rows[set][id]
	if row == nil {
		row = map[string]any{idColumn(set): id}
		s.rows[set][id] = row
	}
	maps.Copy(row, cols)
	s.version++
	s.versions[set+"/"+id] = s.version
	delete(s.ct.tombstones[set], id) // created again
}

// idColumn is the primary key column of an entity set:
// contacts → contactid, opportunities → opportunityid.
func idColumn(set string) string {
	switch {
	case strings.HasSuffix(set, "ies"):
		return strings.TrimSuffix(set, "ies") + "yid"
	case strings.HasSuffix(set, "s"):
		return strings.TrimSuffix(set, "s") + "id"
	}
	return set + "id"
}
