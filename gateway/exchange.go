package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cloakroom/cloakroom"
)

// Token exchange per upstream (Route.ExchangeAudience): least privilege
// for each upstream. Instead of the caller's own access token, which every
// client named in its aud (and anyone it leaks from) could replay, the
// upstream receives a token Keycloak issued for its audience only,
// obtained with standard token exchange (RFC 8693, Keycloak 26.2+) as the
// gateway's client:
//
//   - it is sent as "Authorization: Bearer …" (replacing whatever the
//     caller sent: a bearer or DPoP token on API routes), and in the
//     access-token header (X-Forwarded-Access-Token) when
//     forward_access_token is on;
//   - browser sessions exchange the session's access token, API routes the
//     caller's bearer token; cloakroom.Exchanger caches each exchange per
//     subject token and audience until shortly before it expires;
//   - the caller's own token never reaches the upstream: an exchange
//     Keycloak refuses for a configuration reason answers 502
//     (token_exchange_refused) and logs, at ERROR, what to configure;
//     Keycloak refusing the caller's token answers 401; Keycloak
//     unreachable answers 503 with Retry-After.
//
// Keycloak's side: the gateway's client needs "Standard token exchange"
// enabled (Capability config), an Audience mapper for the upstream's
// client id in its dedicated scope, and, for API routes, the callers'
// tokens must name the gateway's client in aud (the gateway checks that by
// default too).

// exchangedKey carries the exchanged token from withExchange to rewrite.
type exchangedKey struct{}

// exchangeRetryAfter is the Retry-After of a 503 for Keycloak down.
const exchangeRetryAfter = "5"

// validateExchangeAudience checks a route's exchange_audience.
func validateExchangeAudience(r Route, forwardAuth bool, bad func(format string, args ...any)) {
	a := r.ExchangeAudience
	switch {
	case strings.IndexFunc(a, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }) >= 0:
		bad("%q is not a Keycloak client id: give the Client ID of the upstream's client, e.g. orders-api", a)
	case r.Upstream == "" && forwardAuth:
		bad("needs an upstream: a route that only authorizes (forward_auth) sends no token anywhere")
	}
}

// withExchange puts the token exchange of rc in front of next (the route's
// proxy). Routes without exchange_audience get next itself.
func (g *Gateway) withExchange(rc *Route, next http.Handler) http.Handler {
	if rc.ExchangeAudience == "" {
		return next
	}
	x, err := cloakroom.NewExchanger(g.realm, cloakroom.ExchangerConfig{
		Credentials: cloakroom.ClientCredentials{ClientID: g.cfg.ClientID, ClientSecret: g.secret},
	})
	if err != nil {
		// Validate requires the client id and secret; never forward
		// the caller's token anyway.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g.logger.Error("token exchange impossible", "route", rc.Name, "error", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"code": "token_exchange_refused", "detail": "the gateway cannot exchange tokens for this upstream: see its log"})
		})
	}
	var logged sync.Map // message -> time logged, to log each problem once per 10 minutes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, token := g.callerHeaders(r)
		if who == nil || token == "" {
			// An anonymous request on a public route: no token to
			// exchange, and none is sent.
			r.Header.Del("Authorization")
			next.ServeHTTP(w, r)
			return
		}
		tok, err := x.Exchange(r.Context(), token, rc.ExchangeAudience)
		if err != nil {
			g.exchangeFailed(w, r, rc, err, &logged)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), exchangedKey{}, tok.AccessToken))
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		next.ServeHTTP(w, r)
	})
}

// exchangeFailed answers a failed exchange; the caller's token is never
// sent on.
func (g *Gateway) exchangeFailed(w http.ResponseWriter, r *http.Request, rc *Route, err error, logged *sync.Map) {
	switch {
	case errors.Is(err, cloakroom.ErrSubjectTokenRefused):
		g.logger.Info("token exchange: Keycloak refuses the caller's token", "route", rc.Name, "audience", rc.ExchangeAudience, "error", err)
		if r.Header.Get("Authorization") != "" && g.bearerChallenge != "" {
			w.Header().Set("WWW-Authenticate", g.bearerChallenge)
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"code": "token_not_valid", "detail": "Keycloak no longer accepts this token (expired, or its session ended): log in again"})
	case errors.Is(err, cloakroom.ErrMisconfigured):
		msg := err.Error()
		if at, ok := logged.Load(msg); !ok || time.Since(at.(time.Time)) > 10*time.Minute {
			logged.Store(msg, time.Now())
			g.logger.Error("token exchange refused: fix the Keycloak configuration", "route", rc.Name, "audience", rc.ExchangeAudience, "error", err)
		}
		writeJSON(w, http.StatusBadGateway, map[string]string{"code": "token_exchange_refused", "detail": "Keycloak refuses the gateway a token for this upstream: see the gateway's log for what to configure"})
	default:
		if r.Context().Err() != nil {
			return // the client went away
		}
		g.logger.Warn("token exchange: Keycloak unavailable", "route", rc.Name, "audience", rc.ExchangeAudience, "error", err)
		w.Header().Set("Retry-After", exchangeRetryAfter)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"code": "identity_provider_unavailable", "detail": "Keycloak cannot be reached to get a token for this upstream; try again shortly"})
	}
}

// upstreamAccessToken is the access token rewrite sends in the access-token
// header: on a route with exchange_audience the exchanged one, and nothing
// ("") if there is none, never the caller's own; elsewhere token.
func upstreamAccessToken(rt *route, in *http.Request, token string) string {
	if rt.cfg.ExchangeAudience == "" {
		return token
	}
	t, _ := in.Context().Value(exchangedKey{}).(string)
	return t
}
