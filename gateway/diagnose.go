package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom"
)

// settingSources says, in the operator's terms, where each setting the
// identity provider can refuse is configured.
var settingSources = map[string]string{
	"issuer":        "--issuer, CLOAKROOM_ISSUER or issuer: in the config file",
	"client_id":     "--client-id, CLOAKROOM_CLIENT_ID or client_id: in the config file",
	"client_secret": "CLOAKROOM_CLIENT_SECRET, CLOAKROOM_CLIENT_SECRET_FILE (--client-secret, --client-secret-file) or client_secret / client_secret_file: in the config file",
}

// Misconfiguration explains an error of the identity provider that shows
// the gateway's configuration to be wrong (cloakroom.ErrMisconfigured):
// the setting to fix and one message naming it, its cause and where it is
// set. ok is false for other errors (an outage: retry).
func Misconfiguration(err error) (setting, msg string, ok bool) {
	var pe *cloakroom.ProviderError
	if !errors.Is(err, cloakroom.ErrMisconfigured) || !errors.As(err, &pe) || pe.Setting == "" {
		return "", "", false
	}
	where := settingSources[pe.Setting]
	if where == "" {
		where = pe.Setting + ": in the config file"
	}
	return pe.Setting, fmt.Sprintf("%s is wrong: %v. Set it with %s", pe.Setting, pe, where), true
}

// idpState is what the gateway knows about the identity provider's view
// of its configuration, for readyz and the logs.
type idpState struct {
	// discovery: nil once keys were fetched; the last error before.
	discovery error
	// client: the provider's refusal of the client id or secret (at the
	// start-up check, a callback or a refresh); nil when accepted or not
	// known.
	client error
	// logged and loggedAt rate-limit the ERROR line of a misconfiguration.
	logged   string
	loggedAt time.Time
}

// reportMisconfigured records a misconfiguration (readyz reports it) and
// logs it at ERROR, once per distinct message and then at most every ten
// minutes.
func (g *Gateway) reportMisconfigured(err error) {
	setting, msg, ok := Misconfiguration(err)
	if !ok {
		return
	}
	g.readyMu.Lock()
	if setting == "issuer" {
		g.idp.discovery = err
	} else {
		g.idp.client = err
	}
	repeat := msg == g.idp.logged && time.Since(g.idp.loggedAt) < 10*time.Minute
	if !repeat {
		g.idp.logged, g.idp.loggedAt = msg, time.Now()
	}
	g.readyMu.Unlock()
	if !repeat {
		g.logger.Error(msg, "setting", setting)
	}
}

// clientAccepted forgets a refusal of the client credentials: a login or a
// refresh just worked.
func (g *Gateway) clientAccepted() {
	g.readyMu.Lock()
	g.idp.client = nil
	g.readyMu.Unlock()
}

// checkClient proves the client id and secret at the token endpoint (see
// cloakroom.Realm.CheckClient), retrying while the provider cannot be
// asked or refuses them: a refusal makes readyz fail with its reason.
func (g *Gateway) checkClient(ctx context.Context) {
	backoff := 30 * time.Second
	for {
		err := g.realm.CheckClient(ctx, cloakroom.ClientCredentials{ClientID: g.cfg.ClientID, ClientSecret: g.secret}, g.login.RedirectURI())
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			g.clientAccepted()
			g.logger.Info("identity provider accepts the client credentials", "client_id", g.cfg.ClientID)
			return
		case errors.Is(err, cloakroom.ErrMisconfigured):
			g.reportMisconfigured(err)
		default:
			g.logger.Warn("could not check the client credentials yet; retrying", "error", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Minute)
	}
}

// OnlineCheck is the result of one check of CheckOnline.
type OnlineCheck struct {
	Name   string // "discovery", "signing keys", "client credentials"
	OK     bool
	Detail string // what was found, or what is wrong and how to fix it
}

// CheckOnline contacts the identity provider the way the gateway will:
// it fetches the discovery document and the signing keys, and proves the
// client id and secret at the token endpoint (with an authorization code
// that cannot exist: nothing is created; Keycloak logs one
// CODE_TO_TOKEN_ERROR event). cfg must be valid (Validate). The error,
// when not nil, names every failed check.
func CheckOnline(ctx context.Context, cfg Config, opts ...Option) ([]OnlineCheck, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	secret, err := clientSecret(cfg)
	if err != nil {
		return nil, err
	}
	realmOpts := []cloakroom.RealmOption{cloakroom.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	if o.httpClient != nil {
		realmOpts = append(realmOpts, cloakroom.WithHTTPClient(o.httpClient))
	}
	realm, err := cloakroom.NewRealm(cfg.Issuer, realmOpts...)
	if err != nil {
		return nil, &ConfigError{Setting: "issuer", Msg: strings.TrimPrefix(err.Error(), "cloakroom: "), Err: err}
	}
	var checks []OnlineCheck
	var problems []string
	fail := func(name string, err error) {
		msg := err.Error()
		if _, m, ok := Misconfiguration(err); ok {
			msg = m
		} else {
			msg = "the identity provider cannot be reached or answers with an error (an outage, or a wrong host or port in the issuer): " + msg
		}
		checks = append(checks, OnlineCheck{Name: name, Detail: msg})
		problems = append(problems, name+": "+msg)
	}
	skip := func(names ...string) {
		for _, n := range names {
			checks = append(checks, OnlineCheck{Name: n, Detail: "skipped"})
		}
	}
	meta, err := realm.Discover(ctx)
	if err != nil {
		fail("discovery", err)
		skip("signing keys", "client credentials")
	} else {
		checks = append(checks, OnlineCheck{Name: "discovery", OK: true, Detail: realm.DiscoveryURL() + " names the issuer " + meta.Issuer})
		if err := realm.RefreshKeys(ctx); err != nil {
			fail("signing keys", err)
		} else {
			checks = append(checks, OnlineCheck{Name: "signing keys", OK: true, Detail: "fetched from " + meta.JWKSURI})
		}
		redirect := strings.TrimSuffix(cfg.PublicURL, "/") + DefaultPrefix + "/callback"
		if err := realm.CheckClient(ctx, cloakroom.ClientCredentials{ClientID: cfg.ClientID, ClientSecret: secret}, redirect); err != nil {
			fail("client credentials", err)
		} else {
			checks = append(checks, OnlineCheck{Name: "client credentials", OK: true, Detail: fmt.Sprintf("the token endpoint accepts client %q and its secret", cfg.ClientID)})
		}
	}
	if len(problems) > 0 {
		return checks, fmt.Errorf("online check failed:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return checks, nil
}

// clientSecret returns the configured secret, read from
// client_secret_file when that is set.
func clientSecret(cfg Config) (string, error) {
	if cfg.ClientSecretFile == "" {
		return cfg.ClientSecret, nil
	}
	b, err := os.ReadFile(cfg.ClientSecretFile)
	if err != nil {
		return "", &ConfigError{Setting: "client_secret_file", Msg: err.Error(), Err: err}
	}
	return strings.TrimSpace(string(b)), nil
}
