package session

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Values keys under which versions before the typed State fields kept
// login's state. Sessions saved by those versions still carry them.
const (
	legacyOpaqueAccess = "cloakroom.opaque_at" // "1"
	legacyStepUp       = "cloakroom.stepup"    // ACR + "@" + Unix seconds
	legacyUserinfo     = "cloakroom.userinfo"  // JSON object
)

// upgradeLegacyValues moves login's state out of Values into the typed
// fields, so that sessions written before an upgrade keep working (the
// next Save writes them in the new form). Keys starting with "cloakroom."
// are reserved, so no application value is taken for one.
func upgradeLegacyValues(s *State) {
	if len(s.Values) == 0 {
		return
	}
	if v, ok := s.Values[legacyOpaqueAccess]; ok {
		s.OpaqueAccessToken = s.OpaqueAccessToken || v != ""
		delete(s.Values, legacyOpaqueAccess)
	}
	if v, ok := s.Values[legacyUserinfo]; ok {
		if len(s.UserinfoClaims) == 0 && json.Valid([]byte(v)) {
			s.UserinfoClaims = json.RawMessage(v)
		}
		delete(s.Values, legacyUserinfo)
	}
	if v, ok := s.Values[legacyStepUp]; ok {
		if i := strings.LastIndexByte(v, '@'); i >= 0 && s.StepUpACR == "" {
			if t, err := strconv.ParseInt(v[i+1:], 10, 64); err == nil {
				s.StepUpACR, s.StepUpAt = v[:i], time.Unix(t, 0)
			}
		}
		delete(s.Values, legacyStepUp)
	}
	if len(s.Values) == 0 {
		s.Values = nil
	}
}
