package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
	"github.com/cloakroom/cloakroom/keycloaktest"
	"github.com/cloakroom/cloakroom/session"
)

const demoSynopsis = `demo [--listen 127.0.0.1:8000] [--idp-listen 127.0.0.1:8080] [--session-file FILE]

Run the whole stack in one process, with nothing to install: a
Keycloak-compatible provider (realm "demo"), a sample application, and the
gateway in front of it. Open the printed URL and log in as alice/alice or
bob/bob. Ctrl-C stops everything.`

// demoShutdownTimeout bounds how long each part of the demo waits for
// requests in flight once asked to stop. Browsers keep spare connections
// open that never carry a request, and net/http waits up to 5 s for those
// before it counts them idle; the demo closes them after this timeout
// instead, so Ctrl-C with a browser open stops within it.
const demoShutdownTimeout = 3 * time.Second

// demoOptions are the command-line settings of `cloakroom demo`.
type demoOptions struct {
	listen, idpListen, sessionFile string
}

// runDemo implements `cloakroom demo`.
func runDemo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", demoSynopsis, stderr)
	var o demoOptions
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8000", "gateway address, the one to open in a browser (port 0 picks a free one)")
	fs.StringVar(&o.idpListen, "idp-listen", "127.0.0.1:8080", "address of the Keycloak-compatible provider (port 0 picks a free one)")
	fs.StringVar(&o.sessionFile, "session-file", "", "SQLite file for the gateway's sessions (default: a temporary file removed at exit)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := startDemo(ctx, o, logger)
	if err != nil {
		if ctx.Err() != nil { // interrupted while starting
			return nil
		}
		return &exitError{code: 1, err: err}
	}
	d.printBanner(stdout)
	<-ctx.Done()
	fmt.Fprintln(stdout, "cloakroom demo: stopping…")
	if err := d.stop(); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("stopping: %w", err)}
	}
	fmt.Fprintln(stdout, "cloakroom demo: stopped")
	return nil
}

// demo is a running `cloakroom demo`: provider, application and gateway.
type demo struct {
	gatewayURL, appURL string
	issuer, secret     string
	store              string // the gateway's session store spec
	tempDir            string // removed at stop; "" with --session-file
	realm              keycloaktest.RealmConfig

	idp      *keycloaktest.Server
	app      *http.Server
	appDone  chan error
	gw       *gateway.Gateway
	gwCancel context.CancelFunc
	gwDone   chan error
}

// listenError turns a failed listen into advice naming the flag.
func listenError(flagName, addr string, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("--%s %s: the address is already in use (another cloakroom demo or dev, Keycloak, or some other server?); stop that program or choose another address, e.g. --%s 127.0.0.1:0", flagName, addr, flagName)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("--%s %s: this machine has no such address; use a local one, e.g. --%s 127.0.0.1:0", flagName, addr, flagName)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("--%s %s: permission denied (ports below 1024 need privileges); choose a port above 1024", flagName, addr)
	}
	return fmt.Errorf("--%s %s: %w", flagName, addr, err)
}

// browserHost turns a listen address into host:port for URLs: an
// unspecified address (":8000", "0.0.0.0:8000") becomes localhost.
func browserHost(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// startDemo starts the three parts. On error, whatever was started is
// stopped again.
func startDemo(ctx context.Context, o demoOptions, logger *slog.Logger) (_ *demo, err error) {
	d := &demo{}
	var undo []func()
	defer func() {
		if err != nil {
			slices.Reverse(undo)
			for _, f := range undo {
				f()
			}
		}
	}()

	// The gateway's address comes first: the provider must know it (redirect
	// URIs, back-channel logout URL) before it starts.
	gwLn, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, listenError("listen", o.listen, err)
	}
	undo = append(undo, func() { gwLn.Close() })
	d.gatewayURL = "http://" + browserHost(gwLn.Addr())

	d.secret = randomSecret()
	d.realm = keycloaktest.DemoRealm(d.secret)
	for i := range d.realm.Clients {
		c := &d.realm.Clients[i]
		if c.ClientID != keycloaktest.DemoClientID {
			continue
		}
		if pattern := d.gatewayURL + "/*"; !slices.Contains(c.RedirectURIs, pattern) {
			c.RedirectURIs = append(slices.Clone(c.RedirectURIs), pattern)
		}
		c.BackchannelLogoutURL = d.gatewayURL + gateway.DefaultPrefix + "/backchannel-logout"
		c.BackchannelLogoutSessionRequired = true
	}
	idpLogger := slog.New(devLogHandler{Handler: logger.Handler()}).With("component", "provider")
	d.idp, err = keycloaktest.New(keycloaktest.WithRealm(d.realm), keycloaktest.WithLogger(idpLogger))
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	if err := d.idp.Start(o.idpListen); err != nil {
		return nil, listenError("idp-listen", o.idpListen, err)
	}
	undo = append(undo, func() { d.idp.Close() })
	d.issuer = d.idp.Issuer(d.realm.Name)

	// The sample application, on a free loopback port only the gateway uses.
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sample application: %w", err)
	}
	d.appURL = "http://" + appLn.Addr().String()
	app := &demoApp{gatewayURL: d.gatewayURL, issuer: d.issuer, clientID: keycloaktest.DemoClientID}
	d.app = &http.Server{Handler: app.handler(), ReadHeaderTimeout: 10 * time.Second}
	d.appDone = make(chan error, 1)
	go func() { d.appDone <- d.app.Serve(appLn) }()
	undo = append(undo, func() { d.app.Close(); <-d.appDone })

	// Sessions in SQLite, the gateway's default store.
	path := o.sessionFile
	if path == "" {
		if d.tempDir, err = os.MkdirTemp("", "cloakroom-demo-"); err != nil {
			return nil, fmt.Errorf("session store: %w", err)
		}
		undo = append(undo, func() { os.RemoveAll(d.tempDir) })
		path = filepath.Join(d.tempDir, "sessions.db")
	}
	d.store = "sqlite:" + path

	gwLogger := logger.With("component", "gateway")
	d.gw, err = gateway.New(ctx, gateway.Config{
		Listen:       gwLn.Addr().String(),
		PublicURL:    d.gatewayURL,
		Issuer:       d.issuer,
		ClientID:     keycloaktest.DemoClientID,
		ClientSecret: d.secret,
		// A fresh key each run: the provider's sessions and keys do not
		// outlive the process either.
		Session: gateway.SessionConfig{Store: d.store, EncryptionKeys: []string{session.GenerateKey()}},
		Routes: []gateway.Route{
			{Name: "admin", Path: "/admin", Upstream: d.appURL, RealmRoles: gateway.RoleRule{Any: []string{"admin"}}},
			{Name: "api", Path: "/api", Upstream: d.appURL, Mode: "both", RealmRoles: gateway.RoleRule{Any: []string{"user"}}},
			{Name: "app", Path: "/", Upstream: d.appURL},
		},
		Log:             gateway.LogConfig{Level: "info", Format: "text"},
		ShutdownTimeout: demoShutdownTimeout,
	}, gateway.WithLogger(gwLogger))
	var fe *gateway.ConfigError
	if errors.As(err, &fe) && fe.Setting == "session.store" && o.sessionFile != "" {
		return nil, fmt.Errorf("--session-file %s: %s", o.sessionFile, fe.Msg)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	undo = append(undo, func() { d.gw.Close() })
	gwCtx, cancel := context.WithCancel(ctx)
	d.gwCancel = cancel
	d.gwDone = make(chan error, 1)
	go func() { d.gwDone <- d.gw.Serve(gwCtx, gwLn) }()
	undo = append(undo, func() { cancel(); <-d.gwDone })

	// The provider is in this process, so the gateway is ready at once; wait
	// for it so that the printed URL works when it appears.
	deadline := time.Now().Add(10 * time.Second)
	for {
		checks := d.gw.Ready(ctx)
		if len(checks) == 0 {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("gateway not ready: %v", checks)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d, nil
}

// stop shuts the three parts down gracefully, side by side: each stops
// accepting connections, lets requests in flight finish, and after
// demoShutdownTimeout closes what is still open. Then the session store is
// closed and the temporary directory removed.
func (d *demo) stop() error {
	d.gwCancel() // the gateway's Serve shuts down with ShutdownTimeout
	ctx, cancel := context.WithTimeout(context.Background(), demoShutdownTimeout)
	defer cancel()
	idpErr := make(chan error, 1)
	go func() { idpErr <- d.idp.Shutdown(ctx) }()
	appErr := make(chan error, 1)
	go func() {
		err := d.app.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			err = d.app.Close()
		}
		if serveErr := <-d.appDone; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, serveErr)
		}
		appErr <- err
	}()

	// A deadline error only means connections were still open at the end
	// (a browser's spare ones, typically) and were closed: not a failure.
	var errs []error
	select {
	case err := <-d.gwDone:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, fmt.Errorf("gateway: %w", err))
		}
	case <-time.After(demoShutdownTimeout + 5*time.Second):
		errs = append(errs, errors.New("gateway: did not stop"))
	}
	if err := d.gw.Close(); err != nil {
		errs = append(errs, fmt.Errorf("session store: %w", err))
	}
	if err := <-appErr; err != nil {
		errs = append(errs, fmt.Errorf("sample application: %w", err))
	}
	if err := <-idpErr; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		errs = append(errs, fmt.Errorf("provider: %w", err))
	}
	if d.tempDir != "" {
		if err := os.RemoveAll(d.tempDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// printBanner says what to open, who can log in, and how to call the API.
func (d *demo) printBanner(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "cloakroom demo: Keycloak login in front of a sample application\n\n")
	fmt.Fprintf(&b, "  open:        %s/\n", d.gatewayURL)
	fmt.Fprintf(&b, "  admin page:  %s/admin      (realm role admin: alice, not bob)\n", d.gatewayURL)
	fmt.Fprintf(&b, "  API:         %s/api/hello  (bearer token or session, realm role user)\n\n", d.gatewayURL)
	b.WriteString("  users (username / password):\n")
	for _, u := range d.realm.Users {
		fmt.Fprintf(&b, "    %-14s roles: %s\n", u.Username+" / "+u.Password, strings.Join(u.RealmRoles, ", "))
	}
	b.WriteString("\n  Keycloak-compatible provider (keycloaktest):\n")
	fmt.Fprintf(&b, "    issuer:        %s\n", d.issuer)
	fmt.Fprintf(&b, "    client:        %s\n", keycloaktest.DemoClientID)
	fmt.Fprintf(&b, "    client secret: %s\n\n", d.secret)
	fmt.Fprintf(&b, "  sample app:  %s (the upstream; browse through the gateway)\n", d.appURL)
	if d.tempDir != "" {
		fmt.Fprintf(&b, "  sessions:    %s (removed at exit)\n\n", d.store)
	} else {
		fmt.Fprintf(&b, "  sessions:    %s\n\n", d.store)
	}
	b.WriteString("  Call the API with a token:\n")
	fmt.Fprintf(&b, "    TOKEN=$(curl -s %s/protocol/openid-connect/token \\\n", d.issuer)
	fmt.Fprintf(&b, "      -d grant_type=password -d client_id=%s -d client_secret=%s \\\n", keycloaktest.DemoClientID, d.secret)
	b.WriteString("      -d username=alice -d password=alice | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n")
	fmt.Fprintf(&b, "    curl -H \"Authorization: Bearer $TOKEN\" %s/api/hello\n", d.gatewayURL)
	b.WriteString("\nPress Ctrl-C to stop.\n")
	_, _ = io.WriteString(w, b.String())
}
