package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cloakroom/cloakroom/keycloaktest"
)

// runCLI runs the command line and returns its exit status and outputs.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTokenVerify(t *testing.T) {
	t.Parallel()
	srv := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	iss := kc.Issuer()
	good := kc.MustToken(t, "alice", "cloakroom")
	tests := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"valid", good, []string{"--issuer", iss, "--audience", "cloakroom"}, 0, `"preferred_username": "alice"`, ""},
		{"valid with Bearer prefix and newline", "Bearer " + good + "\n", []string{"--issuer", iss, "--audience", "cloakroom"}, 0, `"typ": "Bearer"`, ""},
		{"pasted Authorization header", "Authorization: Bearer " + good, []string{"--issuer", iss, "--audience", "cloakroom"}, 0, `"sub"`, ""},
		{"no audience warns", good, []string{"--issuer", iss}, 0, `"sub"`, "audience is not checked"},
		{"wrong audience", good, []string{"--issuer", iss, "--audience", "orders"}, 1, "", "token refused: token audience not accepted"},
		{"azp flag", kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithAudience("account")), []string{"--issuer", iss, "--audience", "orders", "--azp", "cloakroom"}, 0, `"azp"`, ""},
		{"expired", kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithExpired()), []string{"--issuer", iss, "--audience", "cloakroom"}, 1, "", "token expired"},
		{"leeway", kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithExpired()), []string{"--issuer", iss, "--audience", "cloakroom", "--leeway", "2m"}, 0, `"sub"`, ""},
		{"alg none", kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithUnsigned()), []string{"--issuer", iss, "--audience", "cloakroom"}, 1, "", "unsigned token"},
		{"ID token as access", kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithKind(keycloaktest.IDToken)), []string{"--issuer", iss, "--audience", "cloakroom"}, 1, "", "cannot be used as an access token"},
		{"ID token kind", kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithKind(keycloaktest.IDToken)), []string{"--issuer", iss, "--audience", "cloakroom", "--kind", "id"}, 0, `"typ": "ID"`, ""},
		{"garbage", "not-a-token", []string{"--issuer", iss}, 1, "", "malformed token"},
		{"empty stdin", "", []string{"--issuer", iss}, 2, "", "no token on stdin"},
		{"two tokens", good + " " + good, []string{"--issuer", iss}, 2, "", "more than one word"},
		{"missing issuer", good, nil, 2, "", "--issuer is required"},
		{"bad issuer", good, []string{"--issuer", "ftp://x"}, 2, "", "cloakroom token: bad --issuer: issuer URL \"ftp://x\": scheme"},
		{"audience hint names the flag", kc.MustToken(t, "alice", "cloakroom", keycloaktest.WithAudience("account")), []string{"--issuer", iss, "--audience", "orders"}, 1, "", "or accept that client with --azp"},
		{"bad kind", good, []string{"--issuer", iss, "--kind", "refresh"}, 2, "", "--kind"},
		{"unreachable issuer", good, []string{"--issuer", "http://127.0.0.1:1/realms/demo", "--timeout", "2s"}, 1, "", "could not check the token: the issuer did not answer: discovery http://127.0.0.1:1/realms/demo/.well-known/openid-configuration: dial tcp"},
		{"unknown flag", good, []string{"--nope"}, 2, "", "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, tt.stdin, append([]string{"token", "verify"}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, errOut)
			}
			if !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("stdout %q (want %q), stderr %q (want %q)", out, tt.wantOut, errOut, tt.wantErr)
			}
			if code == 0 && !json.Valid([]byte(out)) {
				t.Fatalf("stdout is not JSON: %q", out)
			}
			if strings.Contains(errOut, good) {
				t.Fatal("the token was echoed")
			}
		})
	}
}

func TestTokenDecode(t *testing.T) {
	t.Parallel()
	srv := keycloaktest.NewServer(t, keycloaktest.WithDemoRealm())
	kc := srv.Realm("demo")
	tests := []struct {
		name     string
		stdin    string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"access token", kc.MustToken(t, "bob", "cloakroom"), 0, `"preferred_username": "bob"`, "NOT VERIFIED"},
		{"unsigned token is still shown", kc.MustToken(t, "bob", "cloakroom", keycloaktest.WithUnsigned()), 0, `"alg": "none"`, "NOT VERIFIED"},
		{"refresh token", kc.MustToken(t, "bob", "cloakroom", keycloaktest.WithKind(keycloaktest.RefreshToken)), 0, `"typ": "Refresh"`, ""},
		{"two parts", "abc.def", 1, "", "three dot-separated parts"},
		{"not base64", "a!.b.c", 1, "", "base64url"},
		{"not JSON", "bm90.bm90.c2ln", 1, "", "JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, tt.stdin, "token", "decode")
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d (want %d), stdout %q (want %q), stderr %q (want %q)", code, tt.wantCode, out, tt.wantOut, errOut, tt.wantErr)
			}
			if code == 0 {
				var doc struct {
					Verified bool
					Header   map[string]any
					Claims   map[string]any
				}
				if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Verified || doc.Header["alg"] == nil {
					t.Fatalf("output %q: %v", out, err)
				}
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{nil, 2, "Usage: cloakroom <command>"},
		{[]string{"help"}, 0, "Commands:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"token"}, 2, "missing subcommand"},
		{[]string{"token", "sign"}, 2, "unknown subcommand"},
		{[]string{"token", "verify", "-h"}, 0, "--issuer"},
		{[]string{"dev", "extra"}, 2, "unexpected argument"},
	}
	for _, tt := range tests {
		code, _, errOut := runCLI(t, "", tt.args...)
		if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
			t.Errorf("%q: exit %d (want %d), stderr %q (want %q)", tt.args, code, tt.wantCode, errOut, tt.wantErr)
		}
	}
	if code, out, _ := runCLI(t, "", "version"); code != 0 || !strings.HasPrefix(out, "cloakroom ") {
		t.Errorf("version: %d %q", code, out)
	}
}
