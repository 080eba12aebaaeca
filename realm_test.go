package cloakroom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// discoveryServer serves a discovery document built by doc for every realm path.
func discoveryServer(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, base string)) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler(w, r, srv.URL)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestNewRealmValidatesIssuer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		issuer string
		want   string
	}{
		{"", "empty"},
		{"ftp://kc/realms/demo", "scheme"},
		{"http:///realms/demo", "no host"},
		{"https://user:pw@kc/realms/demo", "credentials"},
		{"https://kc/realms/demo?x=1", "query"},
		{"://bad", "issuer URL"},
	}
	for _, tt := range tests {
		t.Run(tt.issuer, func(t *testing.T) {
			t.Parallel()
			_, err := NewRealm(tt.issuer)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewRealm(%q) = %v, want error containing %q", tt.issuer, err, tt.want)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatal("error repeats credentials")
			}
		})
	}
}

func TestRealmName(t *testing.T) {
	t.Parallel()
	for issuer, want := range map[string]string{
		"https://kc/realms/demo":         "demo",
		"https://kc/auth/realms/demo/":   "demo",
		"https://kc/realms/my%20realm":   "my realm",
		"https://accounts.example.com":   "",
		"https://kc/realms/demo/extra/x": "",
	} {
		r, err := NewRealm(issuer)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Name(); got != want {
			t.Errorf("Name(%q) = %q, want %q", issuer, got, want)
		}
	}
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	good := func(base, realmPath string) string {
		iss := base + realmPath
		return fmt.Sprintf(`{"issuer":%q,"jwks_uri":%q,"token_endpoint":%q,"introspection_endpoint":%q}`,
			iss, iss+"/protocol/openid-connect/certs", iss+"/protocol/openid-connect/token", iss+"/protocol/openid-connect/token/introspect")
	}
	tests := []struct {
		name      string
		realmPath string // path of the issuer on the test server
		configure string // suffix appended to the issuer given to NewRealm
		serve     func(w http.ResponseWriter, base string)
		wantErr   string
	}{
		{"modern", "/realms/demo", "", func(w http.ResponseWriter, base string) { fmt.Fprint(w, good(base, "/realms/demo")) }, ""},
		{"legacy /auth prefix", "/auth/realms/demo", "", func(w http.ResponseWriter, base string) { fmt.Fprint(w, good(base, "/auth/realms/demo")) }, ""},
		{"configured with trailing slash", "/realms/demo", "/", func(w http.ResponseWriter, base string) { fmt.Fprint(w, good(base, "/realms/demo")) }, ""},
		{"issuer mismatch", "/realms/demo", "", func(w http.ResponseWriter, base string) { fmt.Fprint(w, good("http://keycloak:8080", "/realms/demo")) }, "names issuer"},
		{"missing jwks_uri", "/realms/demo", "", func(w http.ResponseWriter, base string) {
			fmt.Fprintf(w, `{"issuer":%q}`, base+"/realms/demo")
		}, "jwks_uri"},
		{"missing issuer", "/realms/demo", "", func(w http.ResponseWriter, base string) { fmt.Fprint(w, `{"jwks_uri":"http://x/certs"}`) }, "issuer"},
		{"relative endpoint", "/realms/demo", "", func(w http.ResponseWriter, base string) {
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"/certs"}`, base+"/realms/demo")
		}, "not an absolute"},
		{"not JSON", "/realms/demo", "", func(w http.ResponseWriter, base string) { fmt.Fprint(w, `{"issuer":`) }, "not valid JSON"},
		{"JSON array", "/realms/demo", "", func(w http.ResponseWriter, base string) { fmt.Fprint(w, `[]`) }, "not valid JSON"},
		{"wrong field type", "/realms/demo", "", func(w http.ResponseWriter, base string) { fmt.Fprint(w, `{"issuer":5}`) }, "issuer"},
		{"404", "/realms/demo", "", func(w http.ResponseWriter, base string) {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":"Realm does not exist"}`)
		}, "404"},
		{"html", "/realms/demo", "", func(w http.ResponseWriter, base string) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, `<html></html>`)
		}, "content type"},
		{"oversized", "/realms/demo", "", func(w http.ResponseWriter, base string) {
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"http://x/c","pad":"`, base+"/realms/demo")
			w.Write([]byte(strings.Repeat("a", 2<<20)))
			fmt.Fprint(w, `"}`)
		}, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := discoveryServer(t, func(w http.ResponseWriter, r *http.Request, base string) {
				if r.URL.Path != tt.realmPath+"/.well-known/openid-configuration" {
					http.NotFound(w, r)
					return
				}
				tt.serve(w, base)
			})
			realm, err := NewRealm(srv.URL+tt.realmPath+tt.configure, WithLogger(discard))
			if err != nil {
				t.Fatal(err)
			}
			m, err := realm.Discover(context.Background())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Issuer != srv.URL+tt.realmPath || realm.Issuer() != m.Issuer {
					t.Fatalf("issuer = %q / %q", m.Issuer, realm.Issuer())
				}
				if m.IntrospectionEndpoint == "" || m.Raw["token_endpoint"] == nil {
					t.Fatalf("metadata incomplete: %+v", m)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			var pe *ProviderError
			if !errors.As(err, &pe) || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err %v is not a *ProviderError wrapping ErrUnavailable", err)
			}
		})
	}
}

func TestDiscoveryTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := discoveryServer(t, func(w http.ResponseWriter, r *http.Request, base string) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	realm, _ := NewRealm(srv.URL+"/realms/demo", WithRequestTimeout(100*time.Millisecond), WithLogger(discard))
	start := time.Now()
	_, err := realm.Discover(context.Background())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the request timeout was not applied")
	}
}

func TestDiscoverySharedAndRetried(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var healthy atomic.Bool
	srv := discoveryServer(t, func(w http.ResponseWriter, r *http.Request, base string) {
		calls.Add(1)
		if !healthy.Load() {
			w.WriteHeader(503)
			return
		}
		time.Sleep(20 * time.Millisecond)
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, base+"/realms/demo", base+"/certs")
	})
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	realm, _ := NewRealm(srv.URL+"/realms/demo", WithClock(clock), WithLogger(discard))

	if _, err := realm.Discover(context.Background()); err == nil {
		t.Fatal("want an error while the provider answers 503")
	}
	// Within the backoff the failure is answered without a request.
	if _, err := realm.Discover(context.Background()); err == nil || calls.Load() != 1 {
		t.Fatalf("err = %v, calls = %d; want the cached failure and 1 call", err, calls.Load())
	}
	healthy.Store(true)
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := realm.Discover(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := calls.Load(); got != 2 {
		t.Fatalf("calls = %d, want 2 (one failed, one shared by 20 callers)", got)
	}
}

func TestProxyFromEnvironment(t *testing.T) {
	// Not parallel: it sets process environment.
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		// A forward proxy receives the absolute URL.
		if !r.URL.IsAbs() {
			t.Errorf("proxy got non-absolute URL %q", r.URL)
		}
		fmt.Fprintf(w, `{"issuer":"http://idp.invalid/realms/demo","jwks_uri":"http://idp.invalid/certs"}`)
	}))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	realm, _ := NewRealm("http://idp.invalid/realms/demo")
	if _, err := realm.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if proxied.Load() != 1 {
		t.Fatal("discovery did not go through HTTP_PROXY")
	}
}

func TestCustomHTTPClient(t *testing.T) {
	t.Parallel()
	var used atomic.Bool
	srv := discoveryServer(t, func(w http.ResponseWriter, r *http.Request, base string) {
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, base+"/realms/demo", base+"/certs")
	})
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	})}
	realm, _ := NewRealm(srv.URL+"/realms/demo", WithHTTPClient(client))
	if _, err := realm.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !used.Load() || realm.client != client {
		t.Fatal("the supplied client was not used")
	}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
