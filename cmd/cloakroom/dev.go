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
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

// devShutdownTimeout bounds how long `cloakroom dev` waits for requests in
// flight once asked to stop.
const devShutdownTimeout = 5 * time.Second

// errDevUsage reports bad command-line usage of `cloakroom dev`.
var errDevUsage = errors.New("cloakroom dev: usage")

// runDev implements `cloakroom dev`: it serves a Keycloak-compatible
// provider (the demo realm, or a realm-export file) until ctx is cancelled,
// or with --export-realm writes the realm export and returns.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cloakroom dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	realmFile := fs.String("realm-file", "", "Keycloak realm-export JSON to serve (default: the demo realm)")
	secret := fs.String("client-secret", "", "secret of the demo realm's \"cloakroom\" client (default: random, printed)")
	exportTo := fs.String("export-realm", "", "write the realm as a Keycloak realm-export JSON `file` and exit")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cloakroom dev [flags]\n\nServe a Keycloak-compatible OpenID Provider for development.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errDevUsage, fs.Arg(0))
	}

	var cfg keycloaktest.RealmConfig
	demo := *realmFile == ""
	if demo {
		if *secret == "" {
			*secret = randomSecret()
		}
		cfg = keycloaktest.DemoRealm(*secret)
	} else {
		if *secret != "" {
			return fmt.Errorf("%w: --client-secret applies to the demo realm; a realm file carries its own secrets", errDevUsage)
		}
		var err error
		if cfg, err = keycloaktest.LoadRealmFile(*realmFile); err != nil {
			return fmt.Errorf("cloakroom dev: %w", err)
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := keycloaktest.New(keycloaktest.WithRealm(cfg), keycloaktest.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("cloakroom dev: %w", err)
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
			return fmt.Errorf("cloakroom dev: %w", err)
		}
		if err := writeFileAtomic(*exportTo, data); err != nil {
			return fmt.Errorf("cloakroom dev: export realm: %w", err)
		}
		fmt.Fprintf(stdout, "Wrote realm %q to %s\n", cfg.Name, *exportTo)
		return nil
	}

	if err := srv.Start(*listen); err != nil {
		return fmt.Errorf("cloakroom dev: %w", err)
	}
	printDevBanner(stdout, srv, cfg, demo)

	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), devShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("cloakroom dev: %w", err)
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
		b.WriteString("\n  clients:\n")
		for _, c := range cfg.Clients {
			if c.Public {
				fmt.Fprintf(&b, "    %s  (public)\n", c.ClientID)
			} else {
				fmt.Fprintf(&b, "    %s  secret: %s\n", c.ClientID, c.Secret)
			}
		}
	} else {
		b.WriteString("  users:")
		for _, u := range cfg.Users {
			fmt.Fprintf(&b, " %s", u.Username)
		}
		b.WriteString("\n  clients:")
		for _, c := range cfg.Clients {
			fmt.Fprintf(&b, " %s", c.ClientID)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nPress Ctrl-C to stop.\n")
	_, _ = io.WriteString(w, b.String())
}

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
