package dataversetest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// parseBatch reads the requests of a $batch; false means answered 400.
func parseBatch(w http.ResponseWriter, r *http.Request) ([]partRequest, bool) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		odataError(w, http.StatusBadRequest, "0x80048d19", "A $batch request needs Content-Type multipart/mixed with a boundary.")
		return nil, false
	}
	reqs := []partRequest{}
	if err := readParts(multipart.NewReader(r.Body, params["boundary"]), &reqs, 0); err != nil {
		odataError(w, http.StatusBadRequest, "0x80048d19", "Malformed $batch body: "+err.Error())
		return nil, false
	}
	if len(reqs) > dataverse.MaxBatch {
		odataError(w, http.StatusBadRequest, "0x80060891", fmt.Sprintf("The batch has %d requests; at most %d are allowed.", len(reqs), dataverse.MaxBatch))
		return nil, false
	}
	return reqs, true
}

// batch answers a $batch: each application/http part is run on its own and
// answered in a part of the response, in order. A change set (a nested
// multipart/mixed part) is run part by part as well.
func (s *Server) batch(w http.ResponseWriter, r *http.Request, reqs []partRequest) {
	// One request toward the number of requests and the concurrency; each
	// part's execution time counts.
	adm, ok := s.admit(w, r, len(reqs))
	if !ok {
		return
	}
	defer adm.release()
	continueOnError := strings.Contains(r.Header.Get("Prefer"), "odata.continue-on-error")
	respBoundary := "batchresponse_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	// The parts run first: the answer (and what its headers say is left)
	// comes once they are done.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.SetBoundary(respBoundary)
	defer func() {
		adm.headers(w)
		w.Header().Set("Content-Type", "multipart/mixed; boundary="+respBoundary)
		w.Header().Set("OData-Version", "4.0")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body.Bytes())
	}()
	for _, p := range reqs {
		if !s.execute(r) {
			break // the client went away
		}
		rec := httptest.NewRecorder()
		s.serveOne(rec, p.req, strings.TrimPrefix(p.req.URL.Path, dataverse.APIPath+"/"))
		ph := textproto.MIMEHeader{}
		ph.Set("Content-Type", "application/http")
		ph.Set("Content-Transfer-Encoding", "binary")
		if p.contentID != "" {
			ph.Set("Content-ID", p.contentID)
		}
		pw, _ := mw.CreatePart(ph)
		fmt.Fprintf(pw, "HTTP/1.1 %d %s\r\n", rec.Code, http.StatusText(rec.Code))
		_ = rec.Header().Write(pw)
		fmt.Fprint(pw, "\r\n")
		_, _ = pw.Write(rec.Body.Bytes())
		if rec.Code >= 400 && !continueOnError {
			break // Dataverse stops at the first failure unless told otherwise
		}
	}
	_ = mw.Close()
}

type partRequest struct {
	contentID string
	req       *http.Request
}

// readParts reads every request of a batch body, change sets included.
func readParts(mr *multipart.Reader, out *[]partRequest, depth int) error {
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		mt, params, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if mt == "multipart/mixed" && depth == 0 {
			if err := readParts(multipart.NewReader(part, params["boundary"]), out, 1); err != nil {
				return err
			}
			continue
		}
		if mt != "application/http" {
			return fmt.Errorf("part Content-Type %q: want application/http", mt)
		}
		req, err := http.ReadRequest(bufio.NewReader(part))
		if err != nil {
			return fmt.Errorf("part request: %w", err)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return fmt.Errorf("part body: %w", err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		*out = append(*out, partRequest{contentID: part.Header.Get("Content-ID"), req: req})
	}
}
