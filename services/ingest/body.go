package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// adminMaxBodyBytes is the largest admin request body: settings are a few
// dozen bytes.
const adminMaxBodyBytes = 64 << 10

// inflightWait is how long a request waits for room among the bodies in
// flight before it is answered 503. Bodies are read and dropped quickly, so
// a short wait lets a burst pass; the wait holds no body.
const inflightWait = time.Second

// checkJSON answers 415 unless the request declares a JSON body. Dataverse
// declares application/json (its webhook client sets it on every post), as
// does any profile source; a missing Content-Type is refused like a wrong one.
func checkJSON(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || (mt != "application/json" && mt != "text/json") {
		problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType, "unsupported-media-type",
			fmt.Sprintf("Content-Type %q: want application/json", ct)))
		return false
	}
	return true
}

// readBody reads a JSON body of at most limit bytes. It holds the body's
// bytes against the in-flight budget until release is called; nothing is
// read before the body is known to fit. When it cannot read, it answers
// (415, 413, 503 or 400) itself and returns the outcome to count.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request, limit int) (body []byte, release func(), outcome string) {
	if !checkJSON(w, r) {
		return nil, nil, "unsupported_media_type"
	}
	tooLarge := func() {
		problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "body-too-large",
			fmt.Sprintf("body exceeds %d bytes", limit)))
	}
	if r.ContentLength > int64(limit) {
		tooLarge()
		return nil, nil, "too_large"
	}
	// A declared length is read into one buffer of that size; a body of
	// unknown length grows its buffer, and old and new buffer coexist for
	// a moment: it is charged twice its limit.
	weight := r.ContentLength
	if weight < 0 {
		weight = 2 * int64(limit)
	}
	ctx, cancel := context.WithTimeout(r.Context(), inflightWait)
	defer cancel()
	if err := s.inflight.Acquire(ctx, weight); err != nil {
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "busy",
			"too many request bytes in flight; retry later"))
		return nil, nil, "busy"
	}
	release = func() { s.inflight.Release(weight) }
	body, err := readLimited(r.Body, r.ContentLength, int64(limit))
	if err != nil {
		release()
		if errors.Is(err, errTooLarge) {
			tooLarge()
			return nil, nil, "too_large"
		}
		problem.Write(w, r, problem.New(http.StatusBadRequest, "invalid-body", "reading body: "+err.Error()))
		return nil, nil, "invalid"
	}
	return body, release, ""
}

var errTooLarge = errors.New("body too large")

// readLimited reads all of r: exactly length bytes when length is known
// (net/http stops the body there), else at most limit bytes, with
// errTooLarge for more.
func readLimited(r io.Reader, length, limit int64) ([]byte, error) {
	if length >= 0 {
		buf := make([]byte, length)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf := make([]byte, 0, min(limit+1, 32<<10))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return nil, errTooLarge
			}
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), limit+1))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			if int64(len(buf)) > limit {
				return nil, errTooLarge
			}
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
