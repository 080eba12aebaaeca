package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

// devShutdownTimeout bounds how long `cloakroom dev` waits for requests in
// flight once asked to stop.
const devShutdownTimeout = 5 * time.Second

// errDevUsage reports bad command-line usage of `cloakroom dev` (exit
// status 2). main prints such an error as it is, so its message carries
// the command's name (see devUsageError).
var errDevUsage = errors.New("cloakroom dev: usage")

// devUsageError is a usage error, worded "cloakroom dev: <message>".
func devUsageError(format string, args ...any) error {
	return &devUsage{msg: fmt.Sprintf(format, args...)}
}

type devUsage struct{ msg string }

func (e *devUsage) Error() string        { return "cloakroom dev: " + e.msg }
func (e *devUsage) Is(target error) bool { return target == errDevUsage }

// keycloakBuiltinClients are the clients Keycloak creates in every realm;
// a realm export lists them, but they are not the application's.
var keycloakBuiltinClients = []string{"account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"}

// repeatedFlag collects the values of a flag given several times.
type repeatedFlag []string

func (l *repeatedFlag) String() string { return strings.Join(*l, " ") }

func (l *repeatedFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

const devDescription = `Usage: cloakroom dev [flags]

Serve a Keycloak-compatible OpenID Provider for development: the demo realm
(users alice/alice and bob/bob, confidential client "cloakroom", public
client "cloakroom-public"), or a Keycloak realm-export file.

Redirect URIs: as in Keycloak, a valid redirect URI on http://127.0.0.1,
http://localhost or http://[::1] registered without a port accepts that
host on any port, so the demo realm's clients accept any path on those
hosts, whatever the port (cloakroom serve on 4180, examples/webapp on 8000,
...). --redirect-uri adds others. The banner lists each client's secret
and redirect URIs, and a refused redirect URI is logged with its client.

Flags:`

// runDev implements `cloakroom dev`: it serves a Keycloak-compatible
// provider (the demo realm, or a realm-export file) until ctx is cancelled,
// or with --export-realm writes the realm export and returns.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cloakroom dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	realmFile := fs.String("realm-file", "", "Keycloak realm-export JSON to serve (default: the demo realm)")
	secret := fs.String("client-secret", "", "secret of the confidential client: the demo realm's \"cloakroom\" (default: random), or with --realm-file the file's only confidential client, or the --client-id one")
	clientID := fs.String("client-id", "", "the client --client-secret and --redirect-uri apply to (default: see each)")
	var redirects repeatedFlag
	fs.Var(&redirects, "redirect-uri", "add a valid redirect `URI` (repeatable; a trailing * matches any path below) to every client with the standard flow, or to the --client-id one")
	exportTo := fs.String("export-realm", "", "write the realm as a Keycloak realm-export JSON `file` and exit")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), devDescription)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2} // the flag package has printed the problem and the usage
	}
	if fs.NArg() > 0 {
		return devUsageError("unexpected argument %q (cloakroom dev takes flags only; see cloakroom dev -h)", fs.Arg(0))
	}

	var cfg keycloaktest.RealmConfig
	demo := *realmFile == ""
	if demo {
		cfg = keycloaktest.DemoRealm(randomSecret())
	} else {
		var err error
		if cfg, err = keycloaktest.LoadRealmFile(*realmFile); err != nil {
			return err
		}
	}
	if err := applyClientFlags(&cfg, *clientID, *secret, redirects, demo); err != nil {
		return err
	}
	logger := slog.New(devLogHandler{Handler: slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}), redirectHint: true})
	srv, err := keycloaktest.New(keycloaktest.WithRealm(cfg), keycloaktest.WithLogger(logger))
	if err != nil {
		return userFacing(err)
	}
	realm := srv.Realm(cfg.Name)
	if cfg.Disabled {
		// Keycloak imports a realm file without "enabled": true as a
		// disabled realm, and so does cloakroom dev; say why logins fail.
		logger.Warn(`realm is disabled: its file has no "enabled": true (Keycloak imports such a realm disabled too); logins will fail with "Realm not enabled"`, "realm", cfg.Name)
	}

	if *exportTo != "" {
		data, err := realm.Export()
		if err != nil {
			return fmt.Errorf("export realm: %w", userFacing(err))
		}
		if err := writeFileAtomic(*exportTo, data); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is of the temporary file
			}
			return fmt.Errorf("--export-realm %s: %w", *exportTo, err)
		}
		fmt.Fprintf(stdout, "Wrote realm %q to %s\n", cfg.Name, *exportTo)
		return nil
	}

	if err := srv.Start(*listen); err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err // without the wording of keycloaktest and net
		}
		return listenError("listen", *listen, err)
	}
	printDevBanner(stdout, srv, cfg, demo)

	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), devShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stopping: %w", userFacing(err))
	}
	fmt.Fprintln(stdout, "cloakroom dev: stopped")
	return nil
}

// printDevBanner tells the developer where the realm is and how to log in.
func printDevBanner(w io.Writer, srv *keycloaktest.Server, cfg keycloaktest.RealmConfig, demo bool) {
	issuer := srv.Issuer(cfg.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "cloakroom dev: Keycloak-compatible provider on %s\n\n", srv.Addr())
	fmt.Fprintf(&b, "  issuer:     %s\n", issuer)
	fmt.Fprintf(&b, "  discovery:  %s/.well-known/openid-configuration\n", issuer)
	fmt.Fprintf(&b, "  token:      %s/protocol/openid-connect/token\n", issuer)
	fmt.Fprintf(&b, "  authorize:  %s/protocol/openid-connect/auth\n", issuer)
	fmt.Fprintf(&b, "  logout:     %s/protocol/openid-connect/logout\n", issuer)
	if demo {
		// A login page to try in a browser (the redirect target need not run).
		fmt.Fprintf(&b, "  try login:  %s/protocol/openid-connect/auth?client_id=%s&redirect_uri=%s&response_type=code&scope=openid\n",
			issuer, keycloaktest.DemoPublicClientID, url.QueryEscape("http://localhost:8000/"))
	}
	if cfg.RegistrationAllowed {
		fmt.Fprintf(&b, "  sign-up:    open the login page with prompt=create\n")
	}
	b.WriteString("\n")
	if demo {
		b.WriteString("  users (username / password):\n")
		for _, u := range cfg.Users {
			fmt.Fprintf(&b, "    %s / %s  (%s, roles: %s)\n", u.Username, u.Password, u.Email, strings.Join(u.RealmRoles, ", "))
		}
	} else {
		b.WriteString("  users:")
		for _, u := range cfg.Users {
			fmt.Fprintf(&b, " %s", u.Username)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n  clients:\n")
	browser := false
	for _, c := range cfg.Clients {
		if slices.Contains(keycloakBuiltinClients, c.ClientID) {
			continue
		}
		switch {
		case c.Public:
			fmt.Fprintf(&b, "    %s  (public)\n", c.ClientID)
		case c.Secret == "":
			fmt.Fprintf(&b, "    %s  secret: none (set one with --client-secret)\n", c.ClientID)
		case strings.Trim(c.Secret, "*") == "":
			fmt.Fprintf(&b, "    %s  secret: %s (masked by Keycloak's export; set one with --client-secret)\n", c.ClientID, c.Secret)
		default:
			fmt.Fprintf(&b, "    %s  secret: %s\n", c.ClientID, c.Secret)
		}
		if c.Disabled {
			b.WriteString("      disabled\n")
		}
		switch {
		case !c.StandardFlow:
			b.WriteString("      no browser login (standard flow off)\n")
		case len(c.RedirectURIs) == 0:
			b.WriteString("      redirect URIs: none (add one with --redirect-uri)\n")
			browser = true
		default:
			fmt.Fprintf(&b, "      redirect URIs: %s\n", strings.Join(c.RedirectURIs, "  "))
			browser = true
		}
	}
	if browser {
		b.WriteString("\n  A redirect URI on http://127.0.0.1, http://localhost or http://[::1] registered\n")
		b.WriteString("  without a port accepts any port there, as in Keycloak; add others with --redirect-uri.\n")
	}
	b.WriteString("\nPress Ctrl-C to stop.\n")
	_, _ = io.WriteString(w, b.String())
}

// applyClientFlags gives the realm's clients what --client-id,
// --client-secret and --redirect-uri ask for. --client-secret goes to the
// --client-id client, else to the demo realm's "cloakroom", else to the
// realm file's only confidential client (Keycloak's built-in clients not
// counted); --redirect-uri to the --client-id client, else to every client
// with the standard flow.
func applyClientFlags(cfg *keycloaktest.RealmConfig, clientID, secret string, redirects []string, demo bool) error {
	var own []int // the realm's clients, Keycloak's built-in ones left out
	for i, c := range cfg.Clients {
		if !slices.Contains(keycloakBuiltinClients, c.ClientID) {
			own = append(own, i)
		}
	}
	names := func(keep func(keycloaktest.ClientConfig) bool) (out []string) {
		for _, i := range own {
			if keep(cfg.Clients[i]) {
				out = append(out, cfg.Clients[i].ClientID)
			}
		}
		return out
	}
	target := -1
	if clientID != "" {
		target = slices.IndexFunc(cfg.Clients, func(c keycloaktest.ClientConfig) bool { return c.ClientID == clientID })
		if target < 0 {
			return devUsageError("--client-id %q: the realm has no such client (its clients: %s)", clientID, strings.Join(names(func(keycloaktest.ClientConfig) bool { return true }), ", "))
		}
	}
	for _, r := range redirects {
		if u, err := url.Parse(r); err != nil || u.Scheme == "" || u.Fragment != "" || strings.Contains(r, "#") {
			return devUsageError("--redirect-uri %q: want an absolute URI without a fragment, e.g. http://127.0.0.1:3000/callback or http://app.test:3000/*", r)
		}
	}
	if secret != "" {
		i := target
		if i < 0 {
			confidential := slices.DeleteFunc(slices.Clone(own), func(i int) bool { return cfg.Clients[i].Public })
			switch {
			case demo:
				i = slices.IndexFunc(cfg.Clients, func(c keycloaktest.ClientConfig) bool { return c.ClientID == keycloaktest.DemoClientID })
			case len(confidential) == 1:
				i = confidential[0]
			case len(confidential) == 0:
				return devUsageError("--client-secret: the realm file has no confidential client to give it to")
			default:
				return devUsageError("--client-secret: the realm file has several confidential clients (%s); name one with --client-id",
					strings.Join(names(func(c keycloaktest.ClientConfig) bool { return !c.Public }), ", "))
			}
		}
		if cfg.Clients[i].Public {
			return devUsageError("--client-secret: client %q is public: it has no secret", cfg.Clients[i].ClientID)
		}
		cfg.Clients[i].Secret = secret
	}
	if len(redirects) > 0 {
		targets := []int{target}
		if target < 0 {
			targets = slices.DeleteFunc(slices.Clone(own), func(i int) bool { return !cfg.Clients[i].StandardFlow })
			if len(targets) == 0 {
				return devUsageError("--redirect-uri: no client of the realm has the standard flow (browser login) enabled")
			}
		}
		for _, i := range targets {
			c := &cfg.Clients[i]
			c.RedirectURIs = slices.Clone(c.RedirectURIs)
			for _, r := range redirects {
				if !slices.Contains(c.RedirectURIs, r) {
					c.RedirectURIs = append(c.RedirectURIs, r)
				}
			}
		}
	}
	return nil
}

// devLogHandler words keycloaktest's log lines for the developer at the
// terminal: without the package's name and, with redirectHint, with the
// flag that fixes a refused redirect URI.
type devLogHandler struct {
	slog.Handler
	redirectHint bool
}

func (h devLogHandler) Handle(ctx context.Context, r slog.Record) error {
	msg, ok := strings.CutPrefix(r.Message, "keycloaktest: ")
	if !ok {
		return h.Handler.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	var redirect string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "redirect_uri" {
			redirect = a.Value.String()
		}
		out.AddAttrs(a)
		return true
	})
	if h.redirectHint && redirect != "" && strings.HasPrefix(msg, "redirect_uri refused: it is not one of") {
		fix := "restart cloakroom dev with --redirect-uri " + redirect
		if u, err := url.Parse(redirect); err == nil && u.Scheme != "" && u.Host != "" {
			fix += " (or --redirect-uri " + u.Scheme + "://" + u.Host + "/* for any path there)"
		}
		out.AddAttrs(slog.String("fix", fix))
	}
	return h.Handler.Handle(ctx, out)
}

func (h devLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return devLogHandler{Handler: h.Handler.WithAttrs(attrs), redirectHint: h.redirectHint}
}

func (h devLogHandler) WithGroup(name string) slog.Handler {
	return devLogHandler{Handler: h.Handler.WithGroup(name), redirectHint: h.redirectHint}
}

// userFacing words a keycloaktest error for the command line: without the
// package's name. errors.Is and errors.As still see the original.
func userFacing(err error) error {
	msg := strings.ReplaceAll(err.Error(), keycloaktest.ErrInvalidConfig.Error()+": ", "")
	msg = strings.ReplaceAll(msg, "keycloaktest: ", "")
	return &wordedError{msg: msg, err: err}
}

// wordedError is an error with another message.
type wordedError struct {
	msg string
	err error
}

func (e *wordedError) Error() string { return e.msg }
func (e *wordedError) Unwrap() error { return e.err }

// randomSecret returns a 256-bit random client secret.
func randomSecret() string {
	buf := make([]byte, 32)
	_, _ = rand.Read(buf) // crypto/rand.Read does not fail on supported platforms
	return base64.RawURLEncoding.EncodeToString(buf)
}

// writeFileAtomic writes through a temporary file and a rename, so the
// target is never left half-written.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
