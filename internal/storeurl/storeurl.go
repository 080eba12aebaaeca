// Package storeurl is the one place that reads the URLs naming a store:
// the gateway's session.store (cloakroom serve --session-store) and
// `cloakroom users sync --db`. It parses them, hides their secrets in
// messages, and opens session stores through the drivers linked into the
// program.
//
// Accepted forms:
//
//	memory:                         sessions in the process's memory (tests)
//	sqlite:PATH                     a SQLite file; PATH is relative to the
//	                                working directory unless it starts with /
//	sqlite://PATH                   the same as sqlite:PATH (the // is dropped,
//	                                so sqlite:///var/x.db is /var/x.db and
//	                                sqlite://x.db is x.db)
//	redis://…, rediss://…           one Redis server (rediss: TLS), as
//	                                redis.ParseURL reads it
//	redis+sentinel://…              Redis behind Sentinel (rediss+sentinel: TLS)
//	redis+cluster://…               Redis Cluster (rediss+cluster: TLS)
//	postgres://…, postgresql://…    PostgreSQL, as pgx reads a connection URL
//
// The Redis forms in full (ParseRedis reads them; docs/redis-ha.md has
// the whole story):
//
//	redis://[[user]:password@]host[:port][/db][?params]
//	redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/MASTERNAME[/db][?params]
//	redis+cluster://[[user]:password@]host[:port][,host[:port]…][?params]
//
// The user and password are those of the Redis servers (for Sentinel: of
// the master and replicas, not of the Sentinels). A Sentinel host's port
// defaults to 26379, a cluster node's to 6379; the host list names the
// Sentinels, or some nodes of the cluster (the rest are discovered).
// IPv6 addresses go in brackets: [::1]:26379. Parameters:
//
//	prefix=P              key prefix (default "cloakroom:"; for a cluster
//	                      "{cloakroom}:", and P must hold a hash tag {…})
//	min_replicas_ack=N    replicas that must acknowledge a deletion (WAIT)
//	                      before it counts as done (default 1 for Sentinel
//	                      and Cluster, 0 for one server)
//	wait_timeout=D        how long to wait for them (default 1s)
//	sentinel_username=U   the Sentinels' own credentials (Sentinel only)
//	sentinel_password=P
//	master_name=M, addr=H:P, db=N
//	                      go-redis's spellings of the master name, of more
//	                      hosts and of the database, also accepted
//	anything else         a go-redis client option in its spelling
//	                      (dial_timeout=3s, read_timeout=2s, pool_size=20,
//	                      max_retries=3, …), as redis.ParseFailoverURL and
//	                      redis.ParseClusterURL read them
//
// go-redis's own ParseFailoverURL and ParseClusterURL read redis:// URLs
// with addr= parameters, which cannot be told apart from one server's URL,
// and ParseFailoverURL takes the user information as the Sentinels'
// credentials; hence the distinct schemes here, with the user information
// always the Redis servers' own.
//
// Drivers: a session store package registers itself here when it is
// linked in (session/sqlitestore, session/redisstore and session/pgstore
// do so in their init), so a program that imports the gateway links only
// the stores it imports, e.g. import _ "github.com/cloakroom/cloakroom/session/redisstore".
// cmd/cloakroom imports all three.
package storeurl

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/cloakroom/cloakroom/session"
)

// Kind is the kind of store a URL names.
type Kind string

// The kinds of store.
const (
	Memory   Kind = "memory"
	SQLite   Kind = "sqlite"
	Redis    Kind = "redis"
	Postgres Kind = "postgres"
)

// URL is a parsed store URL.
type URL struct {
	Kind Kind
	// Target is what the store's opener takes: the file path for SQLite,
	// the whole URL for Redis and PostgreSQL, "" for memory.
	Target string
}

// Shared reports whether several processes can share the store (and so
// need the same encryption keys).
func (u URL) Shared() bool { return u.Kind == Redis || u.Kind == Postgres }

// ErrNoPath is returned by Parse for "sqlite:" (or "sqlite://") with no
// file path.
var ErrNoPath = errors.New("sqlite: needs a file path, e.g. sqlite:/var/lib/cloakroom/sessions.db")

// Forms lists the accepted forms, for messages.
const Forms = "sqlite:PATH, redis://host:6379/0, redis+sentinel://host:26379,host2:26379/MASTERNAME, redis+cluster://host:6379,host2:6379, postgres://user@host/db or memory:"

// Parse reads a store URL. Its errors never show a password.
func Parse(s string) (URL, error) {
	switch {
	case s == "memory:":
		return URL{Kind: Memory}, nil
	case strings.HasPrefix(s, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(s, "sqlite:"), "//")
		if path == "" {
			return URL{}, ErrNoPath
		}
		return URL{Kind: SQLite, Target: path}, nil
	case isRedisScheme(s):
		if _, err := ParseRedis(s); err != nil {
			return URL{}, err
		}
		return URL{Kind: Redis, Target: s}, nil
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		return URL{Kind: Postgres, Target: s}, nil
	}
	return URL{}, fmt.Errorf("%q: want %s", Redact(s), Forms)
}

var passwordParam = regexp.MustCompile(`(?i)(password=)[^&\s]*`)

// Redact hides the credentials of a store URL or connection string for a
// message: the user information before the host ("redis://…@host/0") and
// any password= parameter.
func Redact(s string) string {
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if i := strings.Index(s, "://"); i >= 0 && i < at {
			s = s[:i+3] + "…" + s[at:]
		} else {
			s = "…" + s[at:]
		}
	}
	return passwordParam.ReplaceAllString(s, "${1}…")
}

// Opener opens a session store from URL.Target.
type Opener func(ctx context.Context, target string) (session.Store, error)

var (
	mu      sync.RWMutex
	openers = map[Kind]Opener{}
)

// Register makes Open able to open stores of kind k. The store packages
// call it in their init.
func Register(k Kind, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	openers[k] = open
}

func opener(k Kind) (Opener, error) {
	if k == Memory {
		return func(context.Context, string) (session.Store, error) { return session.NewMemoryStore(), nil }, nil
	}
	mu.RLock()
	open := openers[k]
	mu.RUnlock()
	if open == nil {
		pkg := map[Kind]string{SQLite: "sqlitestore", Redis: "redisstore", Postgres: "pgstore"}[k]
		return nil, fmt.Errorf("the %s session store is not linked into this program: import _ \"github.com/cloakroom/cloakroom/session/%s\"", k, pkg)
	}
	return open, nil
}

// Check parses a session store URL and checks that its store is linked in.
func Check(s string) (URL, error) {
	u, err := Parse(s)
	if err != nil {
		return u, err
	}
	_, err = opener(u.Kind)
	return u, err
}

// Open opens the session store named by s.
func Open(ctx context.Context, s string) (session.Store, error) {
	u, err := Parse(s)
	if err != nil {
		return nil, err
	}
	open, err := opener(u.Kind)
	if err != nil {
		return nil, err
	}
	return open(ctx, u.Target)
}

// Opened adapts a store package's Open result to an Opener's, keeping a
// failed open a nil interface.
func Opened[S session.Store](s S, err error) (session.Store, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}
