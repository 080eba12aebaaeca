package login

import (
	"net/url"
	"strings"
)

// safeRedirect returns target if it is safe to send the browser there after
// login or logout: a path of this application ("/account?tab=1"), or an
// absolute URL of an allowed origin. Scheme-relative ("//evil"), backslash
// ("/\evil"), control-character and other-origin targets are refused, so
// return_to cannot be used as an open redirect. An empty target means "/".
func (h *Handler) safeRedirect(target string) (string, bool) {
	if target == "" {
		return h.base.Path + "/", true
	}
	if len(target) > 2048 {
		return "", false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	u, err := url.Parse(target)
	if err != nil {
		return "", false
	}
	if u.Scheme == "" && u.Host == "" && u.User == nil {
		// A local path: must be absolute, not scheme-relative, and must not
		// smuggle a host through an encoded slash or backslash.
		if !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "//") {
			return "", false
		}
		if dec, err := url.PathUnescape(u.EscapedPath()); err != nil || strings.HasPrefix(dec, "//") || strings.Contains(dec, "\\") {
			return "", false
		}
		return target, true
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", false
	}
	if !h.origins[u.Scheme+"://"+u.Host] && (h.cfg.AllowRedirect == nil || !h.cfg.AllowRedirect(u)) {
		return "", false
	}
	return u.String(), true
}
