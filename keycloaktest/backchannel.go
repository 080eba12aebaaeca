package keycloaktest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// backchannelTimeout bounds one back-channel logout POST. Deliveries are
// synchronous, so whatever ends a session returns at most this much later.
const backchannelTimeout = 5 * time.Second

// LogoutDelivery records one back-channel logout POST (protocol doc 4.5).
type LogoutDelivery struct {
	// ClientID is the client the logout token was addressed to (its aud).
	ClientID string
	// URL is the client's BackchannelLogoutURL.
	URL string
	// SessionID is the user session that ended (the token carries it as
	// sid only when the client has BackchannelLogoutSessionRequired).
	SessionID string
	// Token is the logout token sent.
	Token string
	// Status is the HTTP status of the answer, 0 when there was none.
	Status int
	// Err is why the delivery failed: no answer, or a status other than 200
	// and 204. The session ended anyway, as in Keycloak.
	Err error
	// Time is when the POST was made (realm clock).
	Time time.Time
}

// LogoutDeliveries returns the back-channel logout POSTs made so far,
// oldest first.
func (r *Realm) LogoutDeliveries() []LogoutDelivery {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.deliveries)
}

// logoutJob is a logout token to sign and deliver once the realm lock is
// released.
type logoutJob struct {
	clientID, url, sid string
	claims             map[string]any
}

// endSessionLocked marks a session ended and returns a logout job for each
// of its clients that has a back-channel logout URL.
func (r *Realm) endSessionLocked(s *userSession) []logoutJob {
	if s.ended {
		return nil
	}
	s.ended = true
	u := r.users[s.userID]
	if u == nil {
		return nil
	}
	issuer := s.issuer
	if issuer == "" {
		issuer = r.Issuer()
	}
	now := r.now()
	var jobs []logoutJob
	for _, clientID := range sortedKeys(s.clients) {
		c := r.clients[clientID]
		if c == nil || c.cfg.BackchannelLogoutURL == "" {
			continue
		}
		g := grant{issuer: issuer, user: u, client: c, session: s, now: now}
		jobs = append(jobs, logoutJob{clientID: clientID, url: c.cfg.BackchannelLogoutURL, sid: s.id, claims: r.logoutClaims(g)})
	}
	return jobs
}

// backchannelClient posts logout tokens; it never follows redirects.
var backchannelClient = &http.Client{
	Timeout: backchannelTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// deliverLogouts signs and POSTs the logout tokens, in parallel, and
// records each outcome. The realm lock must not be held.
func (r *Realm) deliverLogouts(jobs []logoutJob) {
	if len(jobs) == 0 {
		return
	}
	results := make([]LogoutDelivery, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = r.deliverLogout(j)
		}()
	}
	wg.Wait()
	r.mu.Lock()
	r.deliveries = append(r.deliveries, results...)
	if n := len(r.deliveries); n > 4096 {
		r.deliveries = slices.Clone(r.deliveries[n-4096:])
	}
	r.mu.Unlock()
}

func (r *Realm) deliverLogout(j logoutJob) LogoutDelivery {
	d := LogoutDelivery{ClientID: j.clientID, URL: j.url, SessionID: j.sid, Time: r.now()}
	tok, err := r.signAccess(j.claims, "logout+jwt")
	if err != nil {
		d.Err = fmt.Errorf("sign logout token: %w", err)
		r.srv.logger.Error("keycloaktest: back-channel logout", "realm", r.name, "client", j.clientID, "error", d.Err)
		return d
	}
	d.Token = tok
	ctx, cancel := context.WithTimeout(context.Background(), backchannelTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.url, strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
	if err != nil {
		d.Err = fmt.Errorf("back-channel logout URL: %w", err)
	} else {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := backchannelClient.Do(req)
		if err != nil {
			d.Err = err
		} else {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
			d.Status = resp.StatusCode
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
				d.Err = fmt.Errorf("back-channel logout answered %s", resp.Status)
			}
		}
	}
	if d.Err != nil {
		// The URL is configuration, not a secret; the token is never logged.
		r.srv.logger.Warn("keycloaktest: back-channel logout failed; session ended anyway",
			"realm", r.name, "client", j.clientID, "url", j.url, "error", d.Err)
	} else {
		r.srv.logger.Debug("keycloaktest: back-channel logout delivered", "realm", r.name, "client", j.clientID, "status", d.Status)
	}
	return d
}

// Email is a message the realm would have sent (verify email, execute
// actions); tests read them with Outbox instead of running a mail server.
type Email struct {
	// To is the recipient address.
	To string
	// Subject and Body are the message; Body contains Link.
	Subject, Body string
	// Link is the action link the user would click.
	Link string
	// Sent is when the message was queued (realm clock).
	Sent time.Time
}

// Outbox returns the emails the realm has sent, oldest first.
func (r *Realm) Outbox() []Email {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.outbox)
}

// sendEmailLocked queues an email.
func (r *Realm) sendEmailLocked(e Email) {
	e.Sent = r.now()
	r.outbox = append(r.outbox, e)
	if n := len(r.outbox); n > 1024 {
		r.outbox = slices.Clone(r.outbox[n-1024:])
	}
}
