package login

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTokenClientBoundsAnswers: the token endpoint's answer may be exactly
// the limit; one byte more fails with an error that says so (x/oauth2 on
// its own truncates at 1 MiB and reports broken JSON).
func TestTokenClientBoundsAnswers(t *testing.T) {
	t.Parallel()
	const limit = 1000
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := limit
		if r.URL.Path == "/over" {
			n++
		}
		io.WriteString(w, strings.Repeat("x", n))
	}))
	defer srv.Close()
	c := newTokenClient(srv.Client(), limit)
	for path, wantErr := range map[string]bool{"/exact": false, "/over": true} {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case wantErr && (err == nil || !strings.Contains(err.Error(), "response larger than 1000 bytes")):
			t.Errorf("%s: err = %v", path, err)
		case !wantErr && (err != nil || len(b) != limit):
			t.Errorf("%s: %d bytes, err = %v", path, len(b), err)
		}
	}
	if srv.Client().Transport == c.Transport {
		t.Error("the Realm's client was modified")
	}
}
