package devstack

import (
	"io"
	"net"
	"strconv"

	"github.com/notatcompany/notatcompany/services/shared/conf"
)

// Config of the devstack.
type Config struct {
	DataDir     string
	HTTPAddr    string
	OpsAddr     string
	StandinAddr string
	NATSAddr    string
	LogFormat   string
	LogLevel    string
	// WriterReplicas is how many writers run, each with its own connection,
	// as replicas of a deployment do.
	WriterReplicas int
	// PprofAddr, when set, serves net/http/pprof (see profiling.go).
	PprofAddr string
}

// ParseConfig reads the devstack's own settings.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	p := conf.NewParser("devstack", getenv, out)
	p.String(&c.DataDir, "data-dir", "NAC_DATA_DIR", ".data", "where JetStream and the stand-in keep their data")
	p.String(&c.HTTPAddr, "http-addr", "NAC_HTTP_ADDR", "127.0.0.1:8080", "public API: webhooks and admin")
	p.String(&c.OpsAddr, "ops-addr", "NAC_OPS_ADDR", "127.0.0.1:9090", "/healthz, /readyz and /metrics of the whole stack")
	p.String(&c.StandinAddr, "standin-addr", "NAC_STANDIN_ADDR", "127.0.0.1:8081", "the Dataverse Web API stand-in")
	p.String(&c.NATSAddr, "nats-addr", "NAC_NATS_ADDR", "127.0.0.1:4222", "the embedded NATS server's client address")
	p.String(&c.LogFormat, "log-format", "NAC_LOG_FORMAT", "text", "log format: json or text")
	p.String(&c.LogLevel, "log-level", "NAC_LOG_LEVEL", "info", "log level")
	p.Int(&c.WriterReplicas, "writer-replicas", "NAC_WRITER_REPLICAS", 2, "writer replicas, 1-8")
	p.String(&c.PprofAddr, "pprof-addr", "NAC_PPROF_ADDR", "", "serve net/http/pprof here, with each service's work labelled (benchmarks; empty: off)")
	if err := p.Parse(args); err != nil {
		return c, err
	}
	_, port, err := net.SplitHostPort(c.NATSAddr)
	_, perr := strconv.Atoi(port)
	p.Check(err == nil && perr == nil, "NAC_NATS_ADDR=%q: want host:port", c.NATSAddr)
	p.Check(c.DataDir != "", "NAC_DATA_DIR: required")
	p.Check(c.LogFormat == "json" || c.LogFormat == "text", "NAC_LOG_FORMAT=%q: want json or text", c.LogFormat)
	p.Check(conf.ValidLogLevel(c.LogLevel), "NAC_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	p.Check(c.WriterReplicas >= 1 && c.WriterReplicas <= 8, "NAC_WRITER_REPLICAS=%d: want 1-8", c.WriterReplicas)
	return c, p.Err()
}
