package gateway

import (
	"fmt"

	"github.com/cloakroom/cloakroom/session"
)

// The session store (session.store) is parsed and opened by
// internal/storeurl, through the store packages linked into the program:
// a program that runs the gateway imports the ones it accepts, e.g.
//
//	import _ "github.com/cloakroom/cloakroom/session/sqlitestore"
//
// ("memory:" needs none). cmd/cloakroom imports sqlitestore, redisstore
// and pgstore.

func sessionKey(s string) ([]byte, error) {
	keys, err := session.ParseKeys(s)
	if err != nil {
		return nil, err
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("one key per list entry")
	}
	return keys[0], nil
}
