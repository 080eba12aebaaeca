package keycloaktest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// loginStatusIframeHTML is the OIDC session-management iframe keycloak-js
// embeds (check_session_iframe). The RP posts "client_id session_state";
// the iframe answers "unchanged", "changed" or "error". The first message
// is checked with .../init (client and origin allowed), then the
// KEYCLOAK_SESSION cookie, base64url(SHA-256(sid)), is compared with the
// session_state.
const loginStatusIframeHTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>login-status-iframe</title></head>
<body>
<script>
(function () {
  var verified = null;
  var pending = false;

  function getCookie() {
    var parts = document.cookie.split(";");
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].split("=");
      if (kv[0].trim() === "KEYCLOAK_SESSION") {
        var v = kv.slice(1).join("=").trim();
        if (v.charAt(0) === '"') { v = v.slice(1, -1); }
        return v;
      }
    }
    return null;
  }

  function b64url(buf) {
    var s = "", bytes = new Uint8Array(buf);
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function hash(s) {
    if (!window.crypto || !window.crypto.subtle) { return Promise.resolve(null); }
    return window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)).then(b64url);
  }

  function compare(sessionState) {
    var cookie = getCookie();
    if (!cookie) { return Promise.resolve(sessionState !== "" ? "changed" : "unchanged"); }
    return hash(sessionState).then(function (h) {
      if (h === cookie) { return "unchanged"; }
      var legacy = cookie.split("/")[2];
      return legacy === sessionState ? "unchanged" : "changed";
    });
  }

  function check(clientId, origin, sessionState) {
    if (verified) {
      if (verified.clientId !== clientId || verified.origin !== origin) { return Promise.resolve("error"); }
      return compare(sessionState);
    }
    if (pending) { return Promise.resolve("error"); }
    pending = true;
    var url = location.origin + location.pathname + "/init?client_id=" + encodeURIComponent(clientId) +
      "&origin=" + encodeURIComponent(origin);
    return fetch(url, {credentials: "include"}).then(function (resp) {
      pending = false;
      if (!resp.ok) { return "error"; }
      verified = {clientId: clientId, origin: origin};
      return compare(sessionState);
    }, function () { pending = false; return "error"; });
  }

  window.addEventListener("message", function (event) {
    if (typeof event.data !== "string") { return; }
    var data = event.data.split(" ");
    if (data.length !== 2) { return; }
    check(data[0], event.origin, data[1]).then(function (status) {
      event.source.postMessage(status, event.origin);
    });
  }, false);
})();
</script>
</body>
</html>
`

// step1HTML and step2HTML are keycloak-js's third-party cookie check: step
// 1 sets test cookies and goes to step 2, which tells the parent window
// "supported" or "unsupported".
const step1HTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>3p-cookies step 1</title></head>
<body>
<script>
  var secure = location.protocol === "https:" ? "; SameSite=None; Secure" : "";
  document.cookie = "KEYCLOAK_3P_COOKIE_SAMESITE=supported; Max-Age=60" + secure;
  document.cookie = "KEYCLOAK_3P_COOKIE=supported; Max-Age=60";
  window.location = "step2.html";
</script>
</body>
</html>
`

const step2HTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>3p-cookies step 2</title></head>
<body>
<script>
  if (document.cookie.indexOf("KEYCLOAK_3P_COOKIE") !== -1) {
    document.cookie = "KEYCLOAK_3P_COOKIE_SAMESITE=; Max-Age=0";
    document.cookie = "KEYCLOAK_3P_COOKIE=; Max-Age=0";
    window.parent.postMessage("supported", "*");
  } else {
    window.parent.postMessage("unsupported", "*");
  }
</script>
</body>
</html>
`

// staticHTML serves a fixed page meant to be framed by client applications.
func staticHTML(body string) realmHandler {
	return func(_ *Server, _ *Realm, w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html;charset=utf-8")
		h.Set("P3P", `CP="This is not a P3P policy!"`)
		if req.URL.Query().Get("version") != "" {
			h.Set("Cache-Control", "max-age=2592000")
		} else {
			h.Set("Cache-Control", "no-cache, must-revalidate, no-transform, no-store")
		}
		_, _ = w.Write([]byte(body))
	}
}

// handleIframeInit answers 204 when the client exists, is enabled and the
// origin is one of its web origins ("*" allows any), else 403.
func handleIframeInit(_ *Server, r *Realm, w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	clientID, origin := q.Get("client_id"), q.Get("origin")
	r.mu.RLock()
	c := r.clients[clientID]
	var cfg ClientConfig
	if c != nil {
		cfg = c.cfg
	}
	r.mu.RUnlock()
	w.Header().Set("Cache-Control", "no-store")
	if c == nil || cfg.Disabled || origin == "" || !originAllowed(cfg, origin) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func originAllowed(c ClientConfig, origin string) bool {
	if slices.Contains(c.WebOrigins, "*") {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return false
	}
	origin = strings.ToLower(u.Scheme + "://" + u.Host)
	for _, o := range allowedOrigins(c) {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}
