// Command webapp is a small web application protected by Keycloak through
// the cloakroom library alone: a public home page, login, a profile page
// with the user's claims and roles, an admin-only page and logout. It is
// the Go twin of the Django, Flask and Quart examples Python teams know.
//
// Against the development server, from the repository root:
//
//	go run ./cmd/cloakroom dev --client-secret dev-secret
//	go run ./examples/webapp --client-secret dev-secret
//
// then open http://127.0.0.1:8000 and log in as alice/alice (admin) or
// bob/bob. The demo realm accepts the app on any loopback port
// (--listen 127.0.0.1:3000 works as well). See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/login"
	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/sqlitestore"
)

type config struct {
	listen       string
	baseURL      string
	issuer       string
	clientID     string
	clientSecret string
	sessionKeys  string
	sessionFile  string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8000", "address to listen on (port 0 picks a free one)")
	flag.StringVar(&cfg.baseURL, "base-url", "", "external URL of the app, where Keycloak sends the browser back (default http://<listen address>, 127.0.0.1 for an unspecified host)")
	flag.StringVar(&cfg.issuer, "issuer", envOr("CLOAKROOM_ISSUER", "http://127.0.0.1:8080/realms/demo"), "Keycloak realm issuer URL")
	flag.StringVar(&cfg.clientID, "client-id", envOr("CLOAKROOM_CLIENT_ID", "cloakroom"), "confidential client id")
	flag.StringVar(&cfg.clientSecret, "client-secret", os.Getenv("CLOAKROOM_CLIENT_SECRET"), "client secret (or CLOAKROOM_CLIENT_SECRET)")
	flag.StringVar(&cfg.sessionKeys, "session-key", os.Getenv("CLOAKROOM_SESSION_KEY"), "base64 AES-256 key(s) for session encryption (default: a random key; sessions then end at restart)")
	flag.StringVar(&cfg.sessionFile, "session-file", filepath.Join(os.TempDir(), "cloakroom-webapp-sessions.db"), "SQLite file for sessions")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("webapp: ")
	if flag.NArg() > 0 {
		log.Fatalf("unexpected argument %q (webapp takes flags only; see -h)", flag.Arg(0))
	}
	if cfg.clientSecret == "" {
		log.Fatal("--client-secret (or CLOAKROOM_CLIENT_SECRET) is required: `cloakroom dev --client-secret dev-secret` sets the demo client's, or copy the one it prints")
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		log.Fatalf("--listen %s: %v", cfg.listen, err)
	}
	if cfg.baseURL == "" {
		cfg.baseURL = defaultBaseURL(ln.Addr())
	}
	if cfg.sessionKeys == "" {
		cfg.sessionKeys = session.GenerateKey()
	}
	store, err := sqlitestore.Open(cfg.sessionFile)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	handler, err := newApp(cfg, store, slog.Default())
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Printf("webapp on %s (Keycloak realm %s, client %s)\n", cfg.baseURL, cfg.issuer, cfg.clientID)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// defaultBaseURL is the app's URL for a browser on this machine: the
// listen address, with 127.0.0.1 for an unspecified host (":8000",
// "0.0.0.0:8000"). A loopback URL suits cloakroom dev, whose demo realm
// accepts redirect URIs on 127.0.0.1, localhost and [::1] on any port.
func defaultBaseURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// newApp wires the library: a Realm, a session Manager over the store, the
// login Handler, and the pages.
func newApp(cfg config, store session.Store, logger *slog.Logger) (http.Handler, error) {
	realm, err := cloakroom.NewRealm(cfg.issuer, cloakroom.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	keys, err := session.ParseKeys(cfg.sessionKeys)
	if err != nil {
		return nil, err
	}
	ring, err := session.NewKeyring(keys...)
	if err != nil {
		return nil, err
	}
	sessions, err := session.NewManager(session.Config{Store: store, Keyring: ring}) // login.New makes cookies Secure for an https BaseURL
	if err != nil {
		return nil, err
	}
	auth, err := login.New(login.Config{
		Realm: realm, ClientID: cfg.clientID, ClientSecret: cfg.clientSecret,
		BaseURL: cfg.baseURL, Sessions: sessions, Logger: logger,
		AfterLogin: func(ctx context.Context, e *login.LoginEvent) error {
			// The place to create or update the local user row, keyed by
			// e.IDClaims.Subject() — never by the username.
			logger.Info("login", "sub", e.IDClaims.Subject(), "username", e.IDClaims.Username())
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	auth.Mount(mux) // login, callback, logout, back-channel logout, register under /auth/
	p := pages{auth}
	mux.HandleFunc("GET /{$}", p.home)
	mux.Handle("GET /profile", auth.RequireLogin(http.HandlerFunc(p.profile)))
	mux.Handle("GET /admin", auth.RequireAnyRealmRole("admin")(http.HandlerFunc(p.admin)))
	// CanonicalPaths: the path the mux matched is the path every handler
	// reads (ServeMux alone routes "/x/..%2fadmin" to "/").
	return cloakroom.CanonicalPaths(auth.Middleware(mux)), nil
}
