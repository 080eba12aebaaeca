package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
)

// TestTLS serves HTTPS from a certificate file pair; sessions cookies are
// then Secure and get the __Host- prefix.
func TestTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	g, err := gateway.New(context.Background(), gateway.Config{
		Listen: ln.Addr().String(), PublicURL: "https://" + ln.Addr().String(),
		Issuer: e.kc.Issuer(), ClientID: "cloakroom", ClientSecret: "x",
		Session: gateway.SessionConfig{Store: "memory:"},
		TLS:     gateway.TLSConfig{CertFile: certFile, KeyFile: keyFile},
		Routes:  []gateway.Route{{Path: "/", Upstream: e.upstream.URL}},
	}, gateway.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	pool := x509.NewCertPool()
	pool.AddCert(mustParse(t, der))
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get("https://" + ln.Addr().String() + "/_cloakroom/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("healthz over TLS: %d", resp.StatusCode)
	}
	// The login's per-attempt cookie is Secure with the __Secure- prefix.
	resp, err = client.Get("https://" + ln.Addr().String() + "/page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	found := false
	for _, c := range resp.Cookies() {
		if c.Secure && len(c.Name) > 9 && c.Name[:9] == "__Secure-" {
			found = true
		}
	}
	if resp.StatusCode != http.StatusFound || !found {
		t.Fatalf("login start over TLS: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
