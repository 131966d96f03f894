package dataverse_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// The headers as Dataverse sends them: the time left has a thousands
// separator and two decimals (Microsoft Learn, "Use PowerShell and Visual
// Studio Code with the Dataverse Web API", section "Debug using Fiddler",
// https://learn.microsoft.com/power-apps/developer/data-platform/webapi/use-ps-and-vscode-web-api,
// shows "1,200.00" beside x-ms-dop-hint: 48 and a burst of 5999).
func TestReadRateLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		headers map[string]string
		want    dataverse.RateLimit
		present bool
	}{
		{"none", 200, nil, dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1}, false},
		{"as sent", 204, map[string]string{
			"x-ms-ratelimit-burst-remaining-xrm-requests": "5999",
			"x-ms-ratelimit-time-remaining-xrm-requests":  "1,200.00",
			"x-ms-dop-hint": "48",
		}, dataverse.RateLimit{BurstRemaining: 5999, TimeRemaining: 1200 * time.Second, DOPHint: 48}, true},
		{"fractions", 204, map[string]string{"x-ms-ratelimit-time-remaining-xrm-requests": "1,199.46"},
			dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: 1199460 * time.Millisecond}, true},
		{"nothing left", 204, map[string]string{"x-ms-ratelimit-burst-remaining-xrm-requests": "0", "x-ms-ratelimit-time-remaining-xrm-requests": "0.00"},
			dataverse.RateLimit{BurstRemaining: 0, TimeRemaining: 0}, true},
		{"unreadable", 204, map[string]string{
			"x-ms-ratelimit-burst-remaining-xrm-requests": "many",
			"x-ms-ratelimit-time-remaining-xrm-requests":  "-3",
			"x-ms-dop-hint": "0",
		}, dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1}, false},
		{"429", 429, map[string]string{"Retry-After": "7"}, dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1, RetryAfter: 7 * time.Second}, true},
		{"429 without Retry-After", 429, nil, dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1, RetryAfter: time.Second}, true},
		{"Retry-After without 429", 503, map[string]string{"Retry-After": "7"}, dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.headers {
				h.Set(k, v)
			}
			got := dataverse.ReadRateLimit(tc.status, h)
			if got != tc.want || got.Present() != tc.present {
				t.Errorf("ReadRateLimit = %+v (present %v), want %+v (present %v)", got, got.Present(), tc.want, tc.present)
			}
		})
	}
}

// Whatever a server sends, the reading is within range.
func FuzzReadRateLimit(f *testing.F) {
	f.Add("5999", "1,200.00", "48", "3")
	f.Add("", "", "", "")
	f.Add("-1", "1e400", "99999999999999999999", "x")
	f.Add("0", "NaN", "1", "9223372037")
	f.Fuzz(func(t *testing.T, burst, left, dop, retry string) {
		h := http.Header{}
		h.Set("x-ms-ratelimit-burst-remaining-xrm-requests", burst)
		h.Set("x-ms-ratelimit-time-remaining-xrm-requests", left)
		h.Set("x-ms-dop-hint", dop)
		h.Set("Retry-After", retry)
		rl := dataverse.ReadRateLimit(http.StatusTooManyRequests, h)
		if rl.BurstRemaining < -1 || rl.TimeRemaining < -1 || rl.DOPHint < 0 || rl.RetryAfter <= 0 {
			t.Errorf("ReadRateLimit = %+v", rl)
		}
	})
}
