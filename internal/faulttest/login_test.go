package faulttest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/internal/faulttest"
	"github.com/cloakroom/cloakroom/session"
	"github.com/cloakroom/cloakroom/session/pgstore"
	"github.com/cloakroom/cloakroom/session/redisstore"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// go-redis reports every failed dial on stderr; the outages here are on
// purpose.
type silentRedis struct{}

func (silentRedis) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(silentRedis{}) }

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ProxiedStore opens a shared store through a fault proxy.
type proxiedStore func(t *testing.T) (*faulttest.Proxy, session.Store)

// proxiedStores returns Redis and PostgreSQL stores reached through a fault
// proxy, when CLOAKROOM_TEST_REDIS / CLOAKROOM_TEST_POSTGRES are set.
func proxiedStores(t *testing.T) map[string]proxiedStore {
	stores := map[string]proxiedStore{}
	if addr := os.Getenv("CLOAKROOM_TEST_REDIS"); addr != "" {
		stores["redis"] = func(t *testing.T) (*faulttest.Proxy, session.Store) {
			p := faulttest.NewProxy(t, addr)
			s, err := redisstore.Open("redis://"+p.Addr()+"/0", redisstore.WithPrefix("cloakroom-fault-test:"+randomHex()+":"), redisstore.WithLogger(quiet))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return p, s
		}
	} else {
		t.Log("CLOAKROOM_TEST_REDIS unset: Redis variant skipped")
	}
	if dsn := os.Getenv("CLOAKROOM_TEST_POSTGRES"); dsn != "" {
		stores["postgres"] = func(t *testing.T) (*faulttest.Proxy, session.Store) {
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatalf("CLOAKROOM_TEST_POSTGRES: %v", err)
			}
			p := faulttest.NewProxy(t, u.Host)
			proxied := *u
			proxied.Host = p.Addr()
			table := "fault_test_" + randomHex()
			s, err := pgstore.Open(context.Background(), proxied.String(), pgstore.WithTable(table), pgstore.WithLogger(quiet))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				s.Close()
				dropTable(t, dsn, table)
			})
			return p, s
		}
	} else {
		t.Log("CLOAKROOM_TEST_POSTGRES unset: PostgreSQL variant skipped")
	}
	return stores
}

func dropTable(t *testing.T, dsn, table string) {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Logf("drop %s: %v", table, err)
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `DROP TABLE IF EXISTS `+pgx.Identifier{table}.Sanitize()); err != nil {
		t.Logf("drop %s: %v", table, err)
	}
}

// TestLoginMiddlewareStoreDown: an application on the login package keeps
// its sessions in Redis or PostgreSQL reached through a fault proxy; the
// proxy refuses new connections and cuts the open ones, then comes back.
func TestLoginMiddlewareStoreDown(t *testing.T) {
	t.Parallel()
	stores := proxiedStores(t)
	if len(stores) == 0 {
		t.Skip("set CLOAKROOM_TEST_REDIS and/or CLOAKROOM_TEST_POSTGRES to run the store outage tests")
	}
	for name, open := range stores {
		for _, journal := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/journal=%v", name, journal), func(t *testing.T) {
				t.Parallel()
				proxy, store := open(t)
				if journal {
					// As a web app wires it: the journal outermost.
					j, err := session.NewJournaledStore(store, session.JournalConfig{Path: filepath.Join(t.TempDir(), "logouts.journal")})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { j.Close() })
					store = j
				}
				app := faulttest.NewLoginApp(t, store)
				faulttest.RunStoreOutage(t, faulttest.Outage{
					KC:        app.KC,
					Protected: app.URL + "/private",
					Whoami: func(p faulttest.Page) string {
						if p.Status != 200 || !strings.HasPrefix(p.Body, "private page of ") {
							return ""
						}
						return strings.Fields(p.Body)[3]
					},
					Logout: app.URL + "/auth/logout",
					Origin: app.URL,
					CSRF: func(b *faulttest.Browser) string {
						return faulttest.CSRF(b.Get(app.URL + "/private"))
					},
					Cookie:  faulttest.AppCookie,
					Journal: journal,
					Break:   proxy.Down,
					Repair: func() {
						if err := proxy.Up(); err != nil {
							t.Fatal(err)
						}
					},
				})
				if logs := app.Logs.String(); !strings.Contains(logs, "session store failed") {
					t.Errorf("the store failures were not logged: %.500s", logs)
				}
			})
		}
	}
}
