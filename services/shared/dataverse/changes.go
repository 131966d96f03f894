package dataverse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// PageQuery is one page of a table read: the first page of a read of
// EntitySet with Select, or the page a NextLink or DeltaLink names.
type PageQuery struct {
	EntitySet string
	Select    []string
	// Link is a @odata.nextLink or @odata.deltaLink of an earlier page;
	// when set, EntitySet and Select are not used.
	Link string
	// TrackChanges asks for change tracking (Prefer: odata.track-changes):
	// the last page of the read carries a delta link.
	TrackChanges bool
	// PageSize is odata.maxpagesize, 1-5000 (0: 5000).
	PageSize int
}

// Page is one page of rows. A row deleted since a delta token is a
// tombstone: Deleted holds its id instead of a row in Rows.
type Page struct {
	Rows      []map[string]any
	Deleted   []string
	NextLink  string
	DeltaLink string
}

// ErrTokenExpired means the delta token is older than the environment keeps
// changes for: read the table in full again.
var ErrTokenExpired = errors.New("delta token expired")

// ErrNotTracked means change tracking is off for the table.
var ErrNotTracked = errors.New("change tracking is not enabled for the table")

// ReadPage reads one page. An expired delta token is ErrTokenExpired, a
// table without change tracking ErrNotTracked, both wrapping the
// *StatusError.
func (c *Client) ReadPage(ctx context.Context, q PageQuery) (*Page, error) {
	size := q.PageSize
	if size <= 0 || size > 5000 {
		size = 5000
	}
	prefer := "odata.maxpagesize=" + strconv.Itoa(size) + `,odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"`
	if q.TrackChanges {
		prefer = "odata.track-changes," + prefer
	}
	res := Resource{}
	var query url.Values
	if q.Link == "" {
		if err := checkIdentifier("entity set", q.EntitySet); err != nil {
			return nil, err
		}
		for _, col := range q.Select {
			if err := checkIdentifier("column", col); err != nil {
				return nil, err
			}
		}
		res.path = q.EntitySet
		if len(q.Select) > 0 {
			query = url.Values{"$select": {strings.Join(q.Select, ",")}}
		}
	}
	var raw struct {
		Value     []map[string]any `json:"value"`
		NextLink  string           `json:"@odata.nextLink"`
		DeltaLink string           `json:"@odata.deltaLink"`
	}
	_, err := c.do(ctx, http.MethodGet, res, q.Link, query, nil, nil, http.Header{"Prefer": {prefer}}, &raw)
	var se *StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusBadRequest && strings.Contains(se.Message, "Version stamp") && strings.Contains(se.Message, "expired"):
		return nil, fmt.Errorf("%w: %w", ErrTokenExpired, err)
	case errors.As(err, &se) && se.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(se.Message), "change tracking is not enabled"):
		return nil, fmt.Errorf("%w: %w", ErrNotTracked, err)
	case err != nil:
		return nil, err
	}
	p := &Page{NextLink: raw.NextLink, DeltaLink: raw.DeltaLink}
	for _, row := range raw.Value {
		if ctx, _ := row["@odata.context"].(string); strings.HasSuffix(ctx, "/$deletedEntity") {
			if id, _ := row["id"].(string); IsGUID(id) {
				p.Deleted = append(p.Deleted, strings.ToLower(id))
			}
			continue
		}
		p.Rows = append(p.Rows, row)
	}
	return p, nil
}

// TotalRecordCounts returns the row count of each table (logical names),
// as RetrieveTotalRecordCount reports it (a snapshot up to a day old in
// Dataverse): for progress and estimates, never for correctness.
func (c *Client) TotalRecordCounts(ctx context.Context, tables ...string) (map[string]int, error) {
	quoted := make([]string, 0, len(tables))
	for _, t := range tables {
		if err := checkIdentifier("table", t); err != nil {
			return nil, err
		}
		quoted = append(quoted, "'"+t+"'")
	}
	var out struct {
		Counts struct {
			Keys   []string `json:"Keys"`
			Values []int    `json:"Values"`
		} `json:"EntityRecordCountCollection"`
	}
	res := Resource{path: "RetrieveTotalRecordCount(EntityNames=[" + strings.Join(quoted, ",") + "])"}
	if _, err := c.do(ctx, http.MethodGet, res, "", nil, nil, nil, nil, &out); err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for i, k := range out.Counts.Keys {
		if i < len(out.Counts.Values) {
			counts[k] = out.Counts.Values[i]
		}
	}
	return counts, nil
}
