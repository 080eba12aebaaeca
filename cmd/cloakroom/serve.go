package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/internal/heapmin"
	"github.com/cloakroom/cloakroom/internal/memlimit"
	"gopkg.in/yaml.v3"

	// The session stores session.store may name (see internal/storeurl).
	_ "github.com/cloakroom/cloakroom/session/pgstore"
	_ "github.com/cloakroom/cloakroom/session/redisstore"
	_ "github.com/cloakroom/cloakroom/session/sqlitestore"
)

const serveSynopsis = `serve [--config FILE] [flags]

Run the gateway: a reverse proxy that logs browser users in through Keycloak,
validates bearer tokens and checks roles before forwarding to upstreams.
Settings come from the YAML file, then CLOAKROOM_* environment variables,
then flags (flags win). The simple case needs no file:

  cloakroom serve --listen 127.0.0.1:4180 --issuer URL --client-id ID \
    --client-secret S --upstream http://127.0.0.1:9000`

// serveMode is what `cloakroom serve` was asked to do.
type serveMode struct {
	check  bool // --check-config: validate, print, exit
	online bool // --online: also contact the identity provider
}

// loadServeConfig merges file, environment and flags (in that order of
// increasing precedence) into a validated Config.
func loadServeConfig(args []string, getenv func(string) string, stderr io.Writer) (gateway.Config, serveMode, error) {
	fs := newFlagSet("serve", serveSynopsis, stderr)
	file := fs.String("config", getenv("CLOAKROOM_CONFIG"), "YAML configuration file (or CLOAKROOM_CONFIG)")
	check := fs.Bool("check-config", false, "validate the configuration, print it (secrets redacted) and exit")
	online := fs.Bool("online", false, "with --check-config: also contact the identity provider (discovery, signing keys) and prove the client id and secret at its token endpoint")
	set := map[string]func(*gateway.Config, string) error{}
	str := func(name, usage string, apply func(*gateway.Config, string)) {
		fs.String(name, "", usage)
		set[name] = func(c *gateway.Config, v string) error { apply(c, v); return nil }
	}
	str("listen", "address to listen on (default "+gateway.DefaultListen+"; CLOAKROOM_LISTEN)", func(c *gateway.Config, v string) { c.Listen = v })
	str("public-url", "external URL of the gateway, e.g. https://app.example.com (default http://<listen>)", func(c *gateway.Config, v string) { c.PublicURL = v })
	str("issuer", "Keycloak realm URL, e.g. https://sso.example.com/realms/myrealm", func(c *gateway.Config, v string) { c.Issuer = v })
	str("client-id", "the gateway's confidential client id", func(c *gateway.Config, v string) { c.ClientID = v })
	str("client-secret", "the client's secret (prefer CLOAKROOM_CLIENT_SECRET or --client-secret-file: flags show in ps)", func(c *gateway.Config, v string) { c.ClientSecret = v })
	str("client-secret-file", "file holding the client's secret", func(c *gateway.Config, v string) { c.ClientSecretFile = v })
	str("upstream", "upstream URL for every path (replaces configured routes), e.g. http://127.0.0.1:9000", func(c *gateway.Config, v string) {
		c.Routes = []gateway.Route{{Name: "default", Path: "/", Upstream: v}}
	})
	str("session-store", "sqlite:PATH (default), redis://…, redis+sentinel://…, redis+cluster://…, postgres://… or memory:", func(c *gateway.Config, v string) { c.Session.Store = v })
	str("logout-journal", "file recording logouts the shared store could not take (default with Redis/PostgreSQL: cloakroom-logouts-LISTEN.journal; off: none)", func(c *gateway.Config, v string) { c.Session.LogoutJournal = v })
	str("encryption-key", "base64 AES-256 session key(s), comma-separated, newest first (prefer CLOAKROOM_ENCRYPTION_KEY)", func(c *gateway.Config, v string) {
		c.Session.EncryptionKeys = splitComma(v)
	})
	str("tls-cert", "TLS certificate file (serve HTTPS)", func(c *gateway.Config, v string) { c.TLS.CertFile = v })
	str("tls-key", "TLS key file", func(c *gateway.Config, v string) { c.TLS.KeyFile = v })
	str("trusted-proxies", "comma-separated IPs/CIDRs of proxies whose X-Forwarded-* headers are honoured", func(c *gateway.Config, v string) {
		c.TrustedProxies = splitComma(v)
	})
	str("profile", "keycloak (default), generic (any OpenID Provider) or auto (CLOAKROOM_PROFILE)", func(c *gateway.Config, v string) { c.Profile = v })
	str("roles-claim", "claim holding the roles realm_roles checks, e.g. groups (default realm_access.roles)", func(c *gateway.Config, v string) { c.RolesClaim = v })
	str("log-level", "debug, info, warn or error", func(c *gateway.Config, v string) { c.Log.Level = v })
	str("log-format", "json or text", func(c *gateway.Config, v string) { c.Log.Format = v })
	str("cookie-domain", "session cookie Domain, e.g. .example.com, shared by the apps under it (CLOAKROOM_COOKIE_DOMAIN)", func(c *gateway.Config, v string) { c.CookieDomain = v })
	fs.String("forward-auth", "", "true to answer the authorization subrequests of a proxy in front (/_cloakroom/auth; CLOAKROOM_FORWARD_AUTH)")
	set["forward-auth"] = func(c *gateway.Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("--forward-auth: %q is not true or false", v)
		}
		c.ForwardAuth = b
		return nil
	}
	fs.String("forward-access-token", "", "true to pass the user's access token to upstreams")
	set["forward-access-token"] = func(c *gateway.Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("--forward-access-token: %q is not true or false", v)
		}
		c.ForwardAccessToken = b
		return nil
	}
	if err := parseFlags(fs, args); err != nil {
		return gateway.Config{}, serveMode{}, err
	}
	mode := serveMode{check: *check, online: *online}
	if mode.online && !mode.check {
		return gateway.Config{}, mode, usageError("--online goes with --check-config: cloakroom serve --check-config --online")
	}
	var cfg gateway.Config
	if *file != "" {
		var err error
		if cfg, err = gateway.LoadFile(*file); err != nil {
			return cfg, mode, err
		}
	}
	if err := cfg.ApplyEnv(getenv); err != nil {
		return cfg, mode, err
	}
	var ferr error
	fs.Visit(func(f *flag.Flag) {
		if apply := set[f.Name]; apply != nil && ferr == nil {
			ferr = apply(&cfg, f.Value.String())
		}
	})
	if ferr != nil {
		return cfg, mode, usageError("%v", ferr)
	}
	return cfg, mode, cfg.Validate()
}

func splitComma(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cfg, mode, err := loadServeConfig(args, os.Getenv, stderr)
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) || errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 1, err: err}
	}
	if mode.check {
		out, _ := yaml.Marshal(cfg.Redacted())
		fmt.Fprintf(stdout, "configuration OK\n\n%s", out)
		if mode.online {
			return checkOnline(ctx, cfg, stdout)
		}
		return nil
	}
	logger := gateway.NewLogger(cfg.Log, os.Stderr)
	applyMemoryLimit(logger, os.DirFS("/"), os.Getenv)
	if floor := applyHeapFloor(logger, os.Getenv); floor != nil {
		defer floor.Stop()
	}
	g, err := gateway.New(ctx, cfg)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer g.Close()
	if err := g.Run(ctx); err != nil {
		return &exitError{code: 1, err: err}
	}
	return nil
}

// applyMemoryLimit gives the Go runtime a soft memory limit below the
// control group's (see internal/memlimit), unless GOMEMLIMIT chose one,
// and logs what it did: the garbage collector then works harder near a
// container's limit instead of the gateway being killed there.
func applyMemoryLimit(logger *slog.Logger, fsys fs.FS, getenv func(string) string) {
	a, err := memlimit.Apply(fsys, getenv, memlimit.DefaultRatio)
	switch {
	case err != nil:
		logger.Warn("could not read the control group's memory limit; the Go runtime has none (set GOMEMLIMIT)", "error", err)
	case a.Set > 0:
		logger.Info("Go memory limit set below the control group's", "cgroup", a.Limit.Group,
			"cgroup_limit_bytes", a.Limit.Bytes, "go_memory_limit_bytes", a.Set)
	}
}

// applyHeapFloor keeps the garbage collector's heap goal at or above
// heapmin.DefaultMin (a quarter of the runtime's memory limit, if that is
// less) while little is live, unless GOGC chose a policy: with few
// sessions the gateway's live heap is about 1 MB, and at the runtime's 4
// MiB minimum it collected every few hundred requests (see
// internal/heapmin). Nil when GOGC is set.
func applyHeapFloor(logger *slog.Logger, getenv func(string) string) *heapmin.Floor {
	if getenv("GOGC") != "" {
		return nil
	}
	floor := uint64(heapmin.DefaultMin)
	if l := debug.SetMemoryLimit(-1); l < math.MaxInt64 {
		floor = min(floor, uint64(l)/4)
	}
	f := heapmin.Start(floor, 100)
	logger.Debug("garbage collector: heap goal kept at or above a minimum while little is live (set GOGC to choose another policy)",
		"min_heap_goal_bytes", floor, "gogc", f.Percent())
	return f
}

// checkOnline runs gateway.CheckOnline and prints one line per check.
func checkOnline(ctx context.Context, cfg gateway.Config, stdout io.Writer, opts ...gateway.Option) error {
	checks, err := gateway.CheckOnline(ctx, cfg, opts...)
	if len(checks) > 0 {
		fmt.Fprintf(stdout, "\nonline checks against %s:\n", cfg.Issuer)
	}
	for _, c := range checks {
		status := "OK"
		if !c.OK {
			status = "FAILED"
			if c.Detail == "skipped" {
				status, c.Detail = "SKIPPED", "(needs the check above)"
			}
		}
		fmt.Fprintf(stdout, "  %-20s %-7s %s\n", c.Name+":", status, c.Detail)
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	return nil
}
