package crmsync

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const linkedInColumn = "msdyn_orgchangestatus"

// A back-fill reads LinkedIn's status column when it is configured, and
// hands it on as the choice a webhook's OptionSetValue makes; without the
// setting it is not even selected.
func TestBackfillReadsTheLinkedInStatusColumn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		linkedIn string
		want     *eventsv1.Value // nil: the change lacks the column
	}{
		{name: "configured", linkedIn: linkedInColumn, want: &eventsv1.Value{Kind: &eventsv1.Value_Choice{Choice: 1}}},
		{name: "not configured", linkedIn: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			standin := dataversetest.New(dataversetest.Options{ClientID: "sync", ClientSecret: "secret"})
			standin.SetIdentity(dataversetest.Identity{OrganizationID: org})
			standin.DefineColumn("contact", "nac_orgchangestatus", "Picklist", 0, 1, 2)
			standin.DefineColumn("contact", linkedInColumn, "Picklist", 0, 1, 2)
			standin.Seed("contacts", contact, map[string]any{"firstname": "Avery", "lastname": "Quinn", "statecode": float64(0),
				"nac_orgchangestatus": float64(0), linkedInColumn: float64(1), "modifiedon": "2026-01-02T03:04:05Z"})
			srv := httptest.NewServer(standin.Handler())
			t.Cleanup(srv.Close)

			js, _ := testkit.JetStream(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			client, err := dataverse.New(ctx, srv.URL, dataverse.Credentials{TokenURL: srv.URL + dataversetest.TokenPath, ClientID: "sync", ClientSecret: "secret"},
				dataverse.Options{Timeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			target := &Target{Reader: client, Acquire: func(context.Context, int) (func(), error) { return func() {}, nil }}
			columns := withLinkedIn(tc.linkedIn)
			s, err := New(ctx, Config{Interval: 24 * time.Hour, PageSize: 100, MaxLag: 1 << 20, Columns: columns},
				Deps{JS: js, Targets: func(string) *Target { return target }, Owner: "test",
					Log: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			s.evaluationWait = 0 // no validator here
			st, rev, err := s.jobs.claim(ctx, org, syncjobs.KindBackfill, "test", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			s.run(ctx, org, st, rev)
			if st, _, _, err = s.jobs.get(ctx, org); err != nil || st.State != syncjobs.StateDone {
				t.Fatalf("job %s: %s %v", st.State, st.Error, err)
			}

			ch := lastChange(ctx, t, js, bus.CRMSubject(org, "contact", contact))
			got, ok := ch.GetColumns()[linkedInColumn]
			switch {
			case tc.want == nil && ok:
				t.Errorf("%s read without the setting: %v", linkedInColumn, got)
			case tc.want != nil && !proto.Equal(got, tc.want):
				t.Errorf("%s = %v, want %v", linkedInColumn, got, tc.want)
			case tc.want != nil && !slices.Contains(ch.GetChangedColumns(), linkedInColumn):
				t.Errorf("changed columns %v lack %s", ch.GetChangedColumns(), linkedInColumn)
			}
			if ch.GetColumns()["firstname"].GetString_() != "Avery" {
				t.Errorf("firstname %v: not the seeded row", ch.GetColumns()["firstname"])
			}
		})
	}
}

// withLinkedIn is the test's columns with the LinkedIn status column.
func withLinkedIn(linkedIn string) crmschema.Columns {
	c := cols
	c.LinkedInStatus = linkedIn
	return c
}

func lastChange(ctx context.Context, t *testing.T, js jetstream.JetStream, subject string) *eventsv1.CrmChange {
	t.Helper()
	stream, err := js.Stream(ctx, bus.StreamCRM)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatalf("no change on %s: %v", subject, err)
	}
	var ch eventsv1.CrmChange
	if err := proto.Unmarshal(m.Data, &ch); err != nil {
		t.Fatal(err)
	}
	return &ch
}

// The sync workers take the LinkedIn status column from the same variable
// as the validator, and refuse the flag column itself.
func TestConfigLinkedInStatusColumn(t *testing.T) {
	parse := func(env map[string]string, flag string) (Config, error) {
		var c Config
		p := conf.NewParser("writer", func(k string) string { return env[k] }, io.Discard)
		c.Define(p)
		if err := p.Parse(nil); err != nil {
			return c, err
		}
		c.Columns.Flag = flag
		c.Validate(p)
		return c, p.Err()
	}
	c, err := parse(map[string]string{"NAC_LINKEDIN_STATUS_COLUMN": linkedInColumn}, "nac_orgchangestatus")
	if err != nil || c.Columns.LinkedInStatus != linkedInColumn {
		t.Fatalf("LinkedInStatus %q, %v", c.Columns.LinkedInStatus, err)
	}
	if !slices.Contains(c.Columns.Read("contact"), linkedInColumn) {
		t.Errorf("contact columns read %v lack %s", c.Columns.Read("contact"), linkedInColumn)
	}
	for env, want := range map[string]string{"msdyn_orgchangestatus": "flag column itself", "Bad-Name": "logical name"} {
		_, err := parse(map[string]string{"NAC_LINKEDIN_STATUS_COLUMN": env}, "msdyn_orgchangestatus")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NAC_LINKEDIN_STATUS_COLUMN=%s: %v, want an error about the %s", env, err, want)
		}
	}
}
