package gateway

// The tests open every kind of session store, as cmd/cloakroom does.
import (
	_ "github.com/cloakroom/cloakroom/session/pgstore"
	_ "github.com/cloakroom/cloakroom/session/redisstore"
	_ "github.com/cloakroom/cloakroom/session/sqlitestore"
)
