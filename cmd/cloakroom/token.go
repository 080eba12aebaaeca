package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/cloakroom/cloakroom"
	jose "github.com/go-jose/go-jose/v4"
)

func runToken(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const synopsis = "token verify|decode [flags] < token"
	if len(args) == 0 {
		return usageError("missing subcommand: verify or decode\nUsage: cloakroom %s", synopsis)
	}
	switch args[0] {
	case "verify":
		return runTokenVerify(ctx, args[1:], stdin, stdout, stderr)
	case "decode":
		return runTokenDecode(args[1:], stdin, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintf(stderr, "Usage: cloakroom %s\n\n  verify   verify a token with the issuer's keys and print its claims\n  decode   print a token's header and claims WITHOUT verifying them\n", synopsis)
		return nil
	}
	return usageError("unknown subcommand %q (want verify or decode)", args[0])
}

// readToken reads one token from r, tolerating surrounding whitespace and an
// "Authorization: Bearer" or "Bearer" prefix pasted along with it.
func readToken(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, cloakroom.MaxTokenSize+1024))
	if err != nil {
		return "", fmt.Errorf("reading the token from stdin: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if t, ok := strings.CutPrefix(s, "Authorization:"); ok {
		s = strings.TrimSpace(t)
	}
	if len(s) > 7 && strings.EqualFold(s[:7], "bearer ") {
		s = strings.TrimSpace(s[7:])
	}
	if s == "" {
		return "", usageError("no token on stdin (pipe one in: cloakroom token verify --issuer URL < token.txt)")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return "", usageError("stdin holds more than one word; pass exactly one token")
	}
	return s, nil
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func runTokenVerify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("token verify", "token verify --issuer URL [--audience A] [flags] < token", stderr)
	issuer := fs.String("issuer", "", "issuer URL, e.g. http://127.0.0.1:8080/realms/demo (required)")
	audience := fs.String("audience", "", "accepted audience (your client id); without it the audience is NOT checked")
	var parties, algs listFlag
	fs.Var(&parties, "azp", "also accept tokens issued to these clients (comma-separated azp values)")
	fs.Var(&algs, "alg", "allowed signature algorithms (comma-separated; default RS256)")
	kind := fs.String("kind", "access", "token kind: access, id or logout")
	leeway := fs.Duration("leeway", 0, "clock-skew tolerance for exp, nbf and iat")
	generic := fs.Bool("generic", false, "generic OpenID Provider: do not require Keycloak's typ claim")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout for discovery and key fetches")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *issuer == "" {
		return usageError("--issuer is required")
	}
	cfg := cloakroom.VerifierConfig{ClientID: *audience, AuthorizedParties: parties, Algorithms: algs, Leeway: *leeway, CacheEntries: -1}
	switch *kind {
	case "access":
		cfg.Kind = cloakroom.AccessToken
	case "id":
		cfg.Kind = cloakroom.IDToken
	case "logout":
		cfg.Kind = cloakroom.LogoutToken
	default:
		return usageError("--kind must be access, id or logout, not %q", *kind)
	}
	if *generic {
		cfg.Profile = cloakroom.GenericOIDC
	}
	if *audience == "" && len(parties) == 0 {
		if cfg.Kind != cloakroom.AccessToken {
			return usageError("--audience (the client id) is required for --kind %s", *kind)
		}
		cfg.SkipAudienceCheck = true
		fmt.Fprintln(stderr, "warning: no --audience given: the audience is not checked")
	}
	token, err := readToken(stdin)
	if err != nil {
		return err
	}
	// The library's own warnings would repeat what this command prints.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	realm, err := cloakroom.NewRealm(*issuer, cloakroom.WithRequestTimeout(*timeout), cloakroom.WithLogger(quiet))
	if err != nil {
		return usageError("bad --issuer: %s", libraryMessage(err))
	}
	v, err := realm.NewVerifier(cfg)
	if err != nil {
		return usageError("%s", libraryMessage(err))
	}
	claims, err := v.Verify(ctx, token)
	if err != nil {
		return &exitError{code: 1, err: verifyFailure(*issuer, err)}
	}
	return writeJSON(stdout, json.RawMessage(claims.RawJSON()))
}

// libraryMessage is a library error as a CLI user should read it: without
// the package's "cloakroom: " prefix (the command adds its own) and with
// the flags of this command where the library names its Go settings.
func libraryMessage(err error) string {
	return strings.NewReplacer(
		"cloakroom: ", "",
		"VerifierConfig.AuthorizedParties", "--azp",
		"VerifierConfig.ClientID", "--audience",
		"VerifierConfig.Algorithms", "--alg",
		"VerifierConfig.Leeway", "--leeway",
	).Replace(err.Error())
}

// verifyFailure tells a token that was checked and refused from one that
// could not be checked because the issuer did not answer as expected.
func verifyFailure(issuer string, err error) error {
	var pe *cloakroom.ProviderError
	if errors.As(err, &pe) {
		if pe.Setting != "" {
			return fmt.Errorf("could not check the token: %s (check --issuer %s)", libraryMessage(err), issuer)
		}
		return fmt.Errorf("could not check the token: the issuer did not answer: %s", libraryMessage(err))
	}
	return fmt.Errorf("token refused: %s", libraryMessage(err))
}

func runTokenDecode(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("token decode", "token decode < token", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	token, err := readToken(stdin)
	if err != nil {
		return err
	}
	header, payload, err := decodeUnverified(token)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	fmt.Fprintln(stderr, "warning: NOT VERIFIED: the signature and claims below have not been checked")
	out := struct {
		Verified bool            `json:"verified"`
		Header   json.RawMessage `json:"header"`
		Claims   json.RawMessage `json:"claims"`
	}{false, header, payload}
	return writeJSON(stdout, out)
}

var allAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512,
}

// decodeUnverified returns the header and payload JSON of a compact JWS.
// go-jose parses it; only tokens go-jose will not parse at all (alg "none",
// unknown algorithms) are split by hand, for display and nothing else.
func decodeUnverified(token string) (header, payload []byte, err error) {
	if jws, err := jose.ParseSignedCompact(token, allAlgorithms); err == nil {
		seg, _, _ := strings.Cut(token, ".")
		header, _ = base64.RawURLEncoding.DecodeString(seg)
		payload = jws.UnsafePayloadWithoutVerification()
	} else {
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			return nil, nil, fmt.Errorf("not a compact JWS: want three dot-separated parts, got %d", len(parts))
		}
		if header, err = base64.RawURLEncoding.DecodeString(parts[0]); err != nil {
			return nil, nil, fmt.Errorf("header is not base64url: %w", err)
		}
		if payload, err = base64.RawURLEncoding.DecodeString(parts[1]); err != nil {
			return nil, nil, fmt.Errorf("payload is not base64url: %w", err)
		}
	}
	if !json.Valid(header) || !bytes.HasPrefix(bytes.TrimSpace(header), []byte("{")) {
		return nil, nil, fmt.Errorf("header is not a JSON object")
	}
	if !json.Valid(payload) {
		return nil, nil, fmt.Errorf("payload is not JSON (an encrypted or opaque token?)")
	}
	return header, payload, nil
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
