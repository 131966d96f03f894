package conf

import (
	"log/slog"
	"time"
)

// Common is the configuration every service shares.
type Common struct {
	NATSURL string
	// NATSAuth is how the service proves itself to NATS.
	NATSAuth        NATSAuth
	OpsAddr         string
	LogFormat       string
	LogLevel        string
	StreamReplicas  int
	ShutdownTimeout time.Duration
}

// Define adds the common settings to p, with opsAddr as the default ops address.
func (c *Common) Define(p *Parser, opsAddr string) {
	p.String(&c.NATSURL, "nats-url", "NAC_NATS_URL", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	c.NATSAuth.Define(p)
	p.String(&c.OpsAddr, "ops-addr", "NAC_OPS_ADDR", opsAddr, "address of /healthz, /readyz and /metrics")
	p.String(&c.LogFormat, "log-format", "NAC_LOG_FORMAT", "json", "log format: json or text")
	p.String(&c.LogLevel, "log-level", "NAC_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	p.Int(&c.StreamReplicas, "stream-replicas", "NAC_STREAM_REPLICAS", 1, "replicas of every stream and bucket (3 in production)")
	p.Duration(&c.ShutdownTimeout, "shutdown-timeout", "NAC_SHUTDOWN_TIMEOUT", 8*time.Second, "how long in-flight work may take to finish on shutdown")
}

// Validate records the problems of c in p.
func (c *Common) Validate(p *Parser) {
	p.Check(c.NATSURL != "", "NAC_NATS_URL: required")
	c.NATSAuth.Validate(p, c.NATSURL)
	p.Check(c.OpsAddr != "", "NAC_OPS_ADDR: required")
	p.Check(c.LogFormat == "json" || c.LogFormat == "text", "NAC_LOG_FORMAT=%q: want json or text", c.LogFormat)
	p.Check(ValidLogLevel(c.LogLevel), "NAC_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	p.Check(c.StreamReplicas >= 1 && c.StreamReplicas <= 5, "NAC_STREAM_REPLICAS=%d: want 1-5", c.StreamReplicas)
	p.Check(c.ShutdownTimeout > 0, "NAC_SHUTDOWN_TIMEOUT: must be positive")
}

// ValidLogLevel reports whether level is one slog knows ("debug", "info",
// "warn", "error", optionally with an offset such as "info+2").
func ValidLogLevel(level string) bool {
	var l slog.Level
	return l.UnmarshalText([]byte(level)) == nil
}
