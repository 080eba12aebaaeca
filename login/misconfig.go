package login

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/cloakroom/cloakroom"
)

// providerFailure answers a request that needed the identity provider and
// could not use it: a misconfiguration of this application (the issuer
// names no realm, the provider refuses the client id or secret; see
// cloakroom.ErrMisconfigured) gets the "misconfigured" page, anything else
// the 503 "temporarily unavailable" one.
func (h *Handler) providerFailure(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, cloakroom.ErrMisconfigured) {
		h.misconfigured(w, r, err)
		return
	}
	h.unavailable(w, r, err)
}

// misconfigured logs err at ERROR (it names the setting to fix), tells
// Config.OnMisconfigured, and answers the browser that the site's sign-in
// is misconfigured (not a 503: retrying does not help until an
// administrator changes the configuration).
func (h *Handler) misconfigured(w http.ResponseWriter, r *http.Request, err error) {
	h.reportMisconfigured(r.Context(), err)
	h.MisconfiguredPage(w, r)
}

// reportMisconfigured tells Config.OnMisconfigured, or, without it, logs
// err at ERROR (at most once a minute while the message stays the same:
// every request would repeat it).
func (h *Handler) reportMisconfigured(ctx context.Context, err error) {
	if h.cfg.OnMisconfigured != nil {
		h.cfg.OnMisconfigured(ctx, err)
		return
	}
	setting := ""
	var pe *cloakroom.ProviderError
	if errors.As(err, &pe) {
		setting = pe.Setting
	}
	msg := err.Error()
	h.misconfigMu.Lock()
	repeat := msg == h.misconfigMsg && h.now().Sub(h.misconfigAt) < time.Minute
	if !repeat {
		h.misconfigMsg, h.misconfigAt = msg, h.now()
	}
	h.misconfigMu.Unlock()
	if !repeat {
		h.logger.Error("login: the identity provider refuses this application's "+setting+" setting: "+msg, "setting", setting)
	}
}

// misconfigLog rate-limits reportMisconfigured's log.
type misconfigLog struct {
	misconfigMu  sync.Mutex
	misconfigMsg string
	misconfigAt  time.Time
}
