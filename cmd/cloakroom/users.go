package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cloakroom/cloakroom"
	"github.com/cloakroom/cloakroom/admin"
	"github.com/cloakroom/cloakroom/directory"
)

const usersSynopsis = `users <subcommand> [flags]

Manage the users of a Keycloak realm through its Admin REST API, as a
service account (a confidential client with "Service accounts" on and the
realm-management roles manage-users, view-users, query-groups and
view-clients), and keep a local user table in step with Keycloak.

Subcommands:
  list [TEXT] | search TEXT   list users (TEXT: prefix of username, email or name)
                              [--first N] [--max N] [--exact] [--enabled=true|false] [--json]
  show USER                   show a user, its realm roles and groups [--json]
  create --username U         [--email E] [--first-name F] [--last-name L] [--password P [--temporary]]
  update USER                 [--email E] [--first-name F] [--last-name L] [--enabled=true|false]
                              [--email-verified=true|false]
  enable USER
  disable USER [--logout]     --logout also ends every session of the user
  delete USER [--yes]         asks for confirmation on a terminal; elsewhere needs --yes
  reset-password USER         --email (send a link) | --next-login | --password P [--temporary]
  logout USER                 end every session of the user
  sessions USER               list the user's sessions [--json]
  roles add|remove USER ROLE... [--client CLIENT]
  groups join|leave USER GROUP    GROUP is a path (/staff/editors) or a unique name
  sync --db sqlite:PATH|postgres://...  [--resume] [--page-size N] [--batch-size N]
                              reconcile the local user table (package directory)

USER is a user id or an exact username.

Connection (every subcommand): --issuer URL --client-id ID and
--client-secret S or --client-secret-file FILE; or CLOAKROOM_ISSUER,
CLOAKROOM_CLIENT_ID, CLOAKROOM_CLIENT_SECRET (CLOAKROOM_CLIENT_SECRET_FILE);
or issuer, client_id, client_secret of the gateway's YAML file (--config
FILE or CLOAKROOM_CONFIG). Flags win over the environment, the environment
over the file.

Exit status: 0 done, 1 failed, 2 bad usage.`

// usersEnv is what the users subcommands read and write.
type usersEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// stdinTTY and stdoutTTY tell whether a person is there: delete asks
	// for confirmation, sync draws a progress bar.
	stdinTTY, stdoutTTY bool
}

func runUsers(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	env := usersEnv{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv,
		stdinTTY: isTerminal(stdin), stdoutTTY: isTerminal(stdout)}
	return env.run(ctx, args)
}

// isTerminal reports whether v is a character device other than the null
// device, i.e. a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

func (e usersEnv) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("missing subcommand\nUsage: cloakroom %s", usersSynopsis)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprintf(e.stderr, "Usage: cloakroom %s\n", usersSynopsis)
		return nil
	case "list", "search":
		return e.list(ctx, sub, rest)
	case "show":
		return e.show(ctx, rest)
	case "create":
		return e.create(ctx, rest)
	case "update":
		return e.update(ctx, rest)
	case "enable", "disable":
		return e.setEnabled(ctx, sub, rest)
	case "delete":
		return e.delete(ctx, rest)
	case "reset-password":
		return e.resetPassword(ctx, rest)
	case "logout":
		return e.logout(ctx, rest)
	case "sessions":
		return e.sessions(ctx, rest)
	case "roles":
		return e.roles(ctx, rest)
	case "groups":
		return e.groups(ctx, rest)
	case "sync":
		return e.sync(ctx, rest)
	}
	return usageError("unknown subcommand %q (run 'cloakroom users --help')", sub)
}

// connFlags are the connection flags every subcommand takes.
type connFlags struct {
	config, issuer, clientID, secret, secretFile string
	timeout                                      time.Duration
}

func addConnFlags(fs *flag.FlagSet) *connFlags {
	c := &connFlags{}
	fs.StringVar(&c.config, "config", "", "gateway YAML file to read issuer, client_id and client_secret from (or CLOAKROOM_CONFIG)")
	fs.StringVar(&c.issuer, "issuer", "", "Keycloak realm URL, e.g. https://sso.example.com/realms/myrealm (or CLOAKROOM_ISSUER)")
	fs.StringVar(&c.clientID, "client-id", "", "service-account client id (or CLOAKROOM_CLIENT_ID)")
	fs.StringVar(&c.secret, "client-secret", "", "the client's secret (prefer CLOAKROOM_CLIENT_SECRET or --client-secret-file: flags show in ps)")
	fs.StringVar(&c.secretFile, "client-secret-file", "", "file holding the client's secret")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "timeout of each request to Keycloak")
	return c
}

// fileConn is what the users commands read from the gateway's YAML file.
type fileConn struct {
	Issuer           string `yaml:"issuer"`
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
}

var yamlQuoted = regexp.MustCompile("`[^`]*`")

func loadFileConn(path string) (fileConn, error) {
	var fc fileConn
	data, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("config file: %w", err)
	}
	if err := yaml.Unmarshal(data, &fc); err != nil {
		// yaml quotes offending values between backquotes: they may be
		// secrets, so they are cut out.
		msg := yamlQuoted.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "(value hidden)")
		return fc, fmt.Errorf("config file %s: %s", path, msg)
	}
	return fc, nil
}

// client builds the admin client from flags, environment and file.
func (c *connFlags) client(e usersEnv) (*admin.Client, error) {
	var fc fileConn
	cfgPath := c.config
	if cfgPath == "" {
		cfgPath = e.getenv("CLOAKROOM_CONFIG")
	}
	if cfgPath != "" {
		var err error
		if fc, err = loadFileConn(cfgPath); err != nil {
			return nil, &exitError{code: 1, err: err}
		}
	}
	pick := func(flagVal, envName, fileVal string) string {
		if flagVal != "" {
			return flagVal
		}
		if v := e.getenv(envName); v != "" {
			return v
		}
		return fileVal
	}
	issuer := pick(c.issuer, "CLOAKROOM_ISSUER", fc.Issuer)
	clientID := pick(c.clientID, "CLOAKROOM_CLIENT_ID", fc.ClientID)
	if c.secret != "" && c.secretFile != "" {
		return nil, usageError("--client-secret and --client-secret-file exclude each other")
	}
	secret, secretFile := "", ""
	switch {
	case c.secretFile != "":
		secretFile = c.secretFile
	case c.secret != "":
		secret = c.secret
	case e.getenv("CLOAKROOM_CLIENT_SECRET_FILE") != "":
		secretFile = e.getenv("CLOAKROOM_CLIENT_SECRET_FILE")
	case e.getenv("CLOAKROOM_CLIENT_SECRET") != "":
		secret = e.getenv("CLOAKROOM_CLIENT_SECRET")
	case fc.ClientSecretFile != "":
		secretFile = fc.ClientSecretFile
	default:
		secret = fc.ClientSecret
	}
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, &exitError{code: 1, err: fmt.Errorf("client secret file: %w", err)}
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return nil, &exitError{code: 1, err: fmt.Errorf("client secret file %s is empty", secretFile)}
		}
	}
	switch {
	case issuer == "":
		return nil, usageError("no issuer: pass --issuer, set CLOAKROOM_ISSUER or put issuer in --config")
	case clientID == "":
		return nil, usageError("no client id: pass --client-id, set CLOAKROOM_CLIENT_ID or put client_id in --config")
	case secret == "":
		return nil, usageError("no client secret: pass --client-secret-file, set CLOAKROOM_CLIENT_SECRET or put client_secret in --config")
	}
	// The library's own warnings would repeat what this command prints.
	quiet := slog.New(slog.DiscardHandler)
	realm, err := cloakroom.NewRealm(issuer, cloakroom.WithRequestTimeout(c.timeout), cloakroom.WithLogger(quiet))
	if err != nil {
		return nil, usageError("--issuer: %v", err)
	}
	ac, err := admin.New(admin.Config{Realm: realm, Client: cloakroom.ClientCredentials{ClientID: clientID, ClientSecret: secret}, Logger: quiet})
	if err != nil {
		return nil, usageError("%v", err)
	}
	return ac, nil
}

// optBool is a flag that may be left unset, or set to true or false.
type optBool struct{ v *bool }

func (o *optBool) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return strconv.FormatBool(*o.v)
}

func (o *optBool) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	o.v = &b
	return nil
}

func (o *optBool) IsBoolFlag() bool { return true }

// parseArgs parses flags that may come before, between or after the
// positional arguments, which it returns.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &exitError{code: 2}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// fail turns an error of the admin API into the command's failure, in
// words that name the problem and the request.
func fail(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: 1, err: describe(err)}
}

func describe(err error) error {
	var ae *admin.Error
	if !errors.As(err, &ae) {
		if errors.Is(err, context.Canceled) {
			return errors.New("interrupted")
		}
		return errors.New(strings.ReplaceAll(err.Error(), "admin: ", ""))
	}
	req := fmt.Sprintf("(%s %s)", ae.Method, ae.Path)
	detail := ae.Message
	if detail == "" {
		detail = ae.Code
	}
	if strings.HasPrefix(detail, "HTTP ") {
		detail = ""
	}
	if ae.Field != "" {
		detail = strings.TrimSpace(detail + " (field " + ae.Field + ")")
	}
	join := func(kind string) error {
		if detail == "" {
			return fmt.Errorf("%s %s", kind, req)
		}
		return fmt.Errorf("%s: %s %s", kind, detail, req)
	}
	switch {
	case ae.Status == http.StatusForbidden && ae.Role != "":
		return fmt.Errorf("forbidden: the service account lacks the realm-management role %s %s", ae.Role, req)
	case ae.Status == http.StatusForbidden:
		return fmt.Errorf("forbidden: the service account lacks a realm-management role for this request %s", req)
	case ae.Status == http.StatusUnauthorized:
		return join("unauthorized")
	case ae.Status == http.StatusNotFound:
		return join("not found")
	case ae.Status == http.StatusConflict:
		return join("conflict")
	case ae.Status == http.StatusBadRequest:
		return join("bad request")
	case ae.Status >= 500:
		return join(fmt.Sprintf("Keycloak server error %d", ae.Status))
	}
	return join(fmt.Sprintf("error %d", ae.Status))
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// findUser resolves USER: an id or an exact username.
// lookup connects to Keycloak and finds the user a subcommand acts on.
func (e usersEnv) lookup(ctx context.Context, conn *connFlags, ref string) (*admin.Client, *admin.User, error) {
	ac, err := conn.client(e)
	if err != nil {
		return nil, nil, err
	}
	u, err := findUser(ctx, ac, ref)
	if err != nil {
		return nil, nil, fail(err)
	}
	return ac, u, nil
}

func findUser(ctx context.Context, ac *admin.Client, ref string) (*admin.User, error) {
	byID := func() (*admin.User, error) { return ac.GetUser(ctx, ref) }
	byName := func() (*admin.User, error) { return ac.FindUserByUsername(ctx, ref) }
	order := []func() (*admin.User, error){byName, byID}
	if uuidRE.MatchString(ref) {
		order = []func() (*admin.User, error){byID, byName}
	}
	for _, f := range order {
		u, err := f()
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, admin.ErrNotFound) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no user with id or username %q in realm %s", ref, ac.RealmName())
}

// oneUser parses the flags of a subcommand taking exactly one USER.
func oneUser(pos []string, synopsis string) (string, error) {
	if len(pos) != 1 {
		return "", usageError("want exactly one USER (id or username)\nUsage: cloakroom %s", synopsis)
	}
	return pos[0], nil
}

func (e usersEnv) list(ctx context.Context, sub string, args []string) error {
	synopsis := "users " + sub + " [TEXT] [--first N] [--max N] [--exact] [--enabled=true|false] [--json]"
	fs := newFlagSet("users "+sub, synopsis, e.stderr)
	conn := addConnFlags(fs)
	first := fs.Int("first", 0, "skip this many users")
	maxN := fs.Int("max", 100, "list at most this many users (0: all)")
	exact := fs.Bool("exact", false, "TEXT must match a whole username, email, first or last name")
	var enabled optBool
	fs.Var(&enabled, "enabled", "only enabled (true) or disabled (false) users")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError("want at most one search TEXT (quote it if it has spaces)")
	}
	if sub == "search" && len(pos) == 0 {
		return usageError("search needs a TEXT\nUsage: cloakroom %s", synopsis)
	}
	if *first < 0 || *maxN < 0 {
		return usageError("--first and --max must not be negative")
	}
	ac, err := conn.client(e)
	if err != nil {
		return err
	}
	q := admin.UserQuery{First: *first, Enabled: enabled.v, BriefRepresentation: true}
	if len(pos) == 1 {
		q.Search = pos[0]
		if *exact {
			q.Search = `"` + pos[0] + `"`
		}
	}
	users := []admin.User{}
	if *maxN > 0 {
		q.Max = *maxN
		if users, err = ac.ListUsers(ctx, q); err != nil {
			return fail(err)
		}
	} else {
		for u, err := range ac.AllUsers(ctx, q) {
			if err != nil {
				return fail(err)
			}
			users = append(users, u)
		}
	}
	if *asJSON {
		return writeJSON(e.stdout, users)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tNAME\tENABLED")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\n", u.ID, tableCell(u.Username), tableCell(u.Email), tableCell(strings.TrimSpace(u.FirstName+" "+u.LastName)), u.Enabled)
	}
	return tw.Flush()
}

// tableCell keeps a table cell on one line (tabs and control characters would
// break the alignment or the terminal).
func tableCell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func (e usersEnv) show(ctx context.Context, args []string) error {
	const synopsis = "users show USER [--json]"
	fs := newFlagSet("users show", synopsis, e.stderr)
	conn := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneUser(pos, synopsis)
	if err != nil {
		return err
	}
	ac, u, err := e.lookup(ctx, conn, ref)
	if err != nil {
		return err
	}
	roles, err := ac.UserRealmRoles(ctx, u.ID)
	if err != nil {
		return fail(err)
	}
	groups, err := ac.UserGroups(ctx, u.ID)
	if err != nil {
		return fail(err)
	}
	roleNames := make([]string, 0, len(roles))
	for _, r := range roles {
		roleNames = append(roleNames, r.Name)
	}
	groupPaths := make([]string, 0, len(groups))
	for _, g := range groups {
		groupPaths = append(groupPaths, g.Path)
	}
	if *asJSON {
		return writeJSON(e.stdout, struct {
			*admin.User
			RealmRoles []string `json:"realmRoles"`
			GroupPaths []string `json:"groups"`
		}{u, roleNames, groupPaths})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	verified := ""
	if u.Email != "" {
		verified = " (not verified)"
		if u.EmailVerified {
			verified = " (verified)"
		}
	}
	created := "-"
	if !u.Created().IsZero() {
		created = u.Created().UTC().Format(time.RFC3339)
	}
	for _, row := range [][2]string{
		{"id", u.ID},
		{"username", tableCell(u.Username)},
		{"email", tableCell(u.Email) + verified},
		{"name", tableCell(strings.TrimSpace(u.FirstName + " " + u.LastName))},
		{"enabled", strconv.FormatBool(u.Enabled)},
		{"created", created},
		{"required actions", tableCell(strings.Join(u.RequiredActions, ", "))},
		{"realm roles", tableCell(strings.Join(roleNames, ", "))},
		{"groups", tableCell(strings.Join(groupPaths, ", "))},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

func (e usersEnv) create(ctx context.Context, args []string) error {
	const synopsis = "users create --username U [--email E] [--first-name F] [--last-name L] [--password P [--temporary]]"
	fs := newFlagSet("users create", synopsis, e.stderr)
	conn := addConnFlags(fs)
	var nu admin.NewUser
	fs.StringVar(&nu.Username, "username", "", "username (required)")
	fs.StringVar(&nu.Email, "email", "", "email address")
	fs.StringVar(&nu.FirstName, "first-name", "", "first name")
	fs.StringVar(&nu.LastName, "last-name", "", "last name")
	fs.BoolVar(&nu.EmailVerified, "email-verified", false, "mark the email as verified")
	fs.StringVar(&nu.Password, "password", "", "initial password (flags show in ps: prefer reset-password --email)")
	fs.BoolVar(&nu.TemporaryPassword, "temporary", false, "the user must change the password at the first login")
	fs.BoolVar(&nu.Disabled, "disabled", false, "create the user disabled")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if nu.Username == "" {
		return usageError("--username is required\nUsage: cloakroom %s", synopsis)
	}
	if nu.TemporaryPassword && nu.Password == "" {
		return usageError("--temporary needs --password")
	}
	ac, err := conn.client(e)
	if err != nil {
		return err
	}
	id, err := ac.CreateUser(ctx, nu)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(e.stdout, "created user %s with id %s\n", nu.Username, id)
	return nil
}

func (e usersEnv) update(ctx context.Context, args []string) error {
	const synopsis = "users update USER [--email E] [--first-name F] [--last-name L] [--enabled=true|false] [--email-verified=true|false]"
	fs := newFlagSet("users update", synopsis, e.stderr)
	conn := addConnFlags(fs)
	email := fs.String("email", "", "new email address")
	firstName := fs.String("first-name", "", "new first name")
	lastName := fs.String("last-name", "", "new last name")
	var enabled, verified optBool
	fs.Var(&enabled, "enabled", "enable (true) or disable (false) the user")
	fs.Var(&verified, "email-verified", "mark the email verified (true) or not (false)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneUser(pos, synopsis)
	if err != nil {
		return err
	}
	var upd admin.UserUpdate
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "email":
			upd.Email = email
		case "first-name":
			upd.FirstName = firstName
		case "last-name":
			upd.LastName = lastName
		}
	})
	upd.Enabled, upd.EmailVerified = enabled.v, verified.v
	if upd.Email == nil && upd.FirstName == nil && upd.LastName == nil && upd.Enabled == nil && upd.EmailVerified == nil {
		return usageError("nothing to update: pass --email, --first-name, --last-name, --enabled or --email-verified")
	}
	ac, u, err := e.lookup(ctx, conn, ref)
	if err != nil {
		return err
	}
	if err := ac.UpdateUser(ctx, u.ID, upd); err != nil {
		return fail(err)
	}
	fmt.Fprintf(e.stdout, "updated user %s\n", u.Username)
	return nil
}

func (e usersEnv) setEnabled(ctx context.Context, sub string, args []string) error {
	synopsis := "users enable USER"
	if sub == "disable" {
		synopsis = "users disable USER [--logout]"
	}
	fs := newFlagSet("users "+sub, synopsis, e.stderr)
	conn := addConnFlags(fs)
	logout := false
	if sub == "disable" {
		fs.BoolVar(&logout, "logout", false, "also end every session of the user (issued access tokens stay valid until they expire otherwise)")
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneUser(pos, synopsis)
	if err != nil {
		return err
	}
	ac, u, err := e.lookup(ctx, conn, ref)
	if err != nil {
		return err
	}
	if sub == "enable" {
		err = ac.EnableUser(ctx, u.ID)
	} else {
		err = ac.DisableUser(ctx, u.ID, logout)
	}
	if err != nil {
		return fail(err)
	}
	msg := sub + "d user " + u.Username
	if logout {
		msg += " and ended its sessions"
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}

func (e usersEnv) delete(ctx context.Context, args []string) error {
	const synopsis = "users delete USER [--yes]"
	fs := newFlagSet("users delete", synopsis, e.stderr)
	conn := addConnFlags(fs)
	yes := fs.Bool("yes", false, "delete without asking")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneUser(pos, synopsis)
	if err != nil {
		return err
	}
	if !*yes && !e.stdinTTY {
		return usageError("refusing to delete user %q without confirmation: stdin is not a terminal; pass --yes", ref)
	}
	ac, u, err := e.lookup(ctx, conn, ref)
	if err != nil {
		return err
	}
	if !*yes {
		fmt.Fprintf(e.stderr, "Delete user %s (id %s, %s)? [y/N] ", tableCell(u.Username), u.ID, tableCell(u.Email))
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(e.stderr, "not deleted")
			return &exitError{code: 1}
		}
	}
	if err := ac.DeleteUser(ctx, u.ID); err != nil {
		return fail(err)
	}
	fmt.Fprintf(e.stdout, "deleted user %s (id %s)\n", u.Username, u.ID)
	return nil
}

func (e usersEnv) resetPassword(ctx context.Context, args []string) error {
	const synopsis = "users reset-password USER (--email | --next-login | --password P [--temporary])"
	fs := newFlagSet("users reset-password", synopsis, e.stderr)
	conn := addConnFlags(fs)
	byEmail := fs.Bool("email", false, "email the user a link to choose a new password")
	nextLogin := fs.Bool("next-login", false, "ask for a new password at the next login")
	password := fs.String("password", "", "set this password (flags show in ps)")
	temporary := fs.Bool("temporary", false, "with --password: the user must change it at the next login")
	lifespan := fs.Duration("lifespan", 0, "with --email: how long the link works (default: the realm's setting, 12h)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneUser(pos, synopsis)
	if err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{*byEmail, *nextLogin, *password != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return usageError("pass exactly one of --email, --next-login and --password\nUsage: cloakroom %s", synopsis)
	}
	if *temporary && *password == "" {
		return usageError("--temporary goes with --password")
	}
	ac, u, err := e.lookup(ctx, conn, ref)
	if err != nil {
		return err
	}
	var done string
	switch {
	case *byEmail:
		err = ac.ExecuteActionsEmail(ctx, u.ID, []string{"UPDATE_PASSWORD"}, admin.ExecuteActionsOptions{Lifespan: *lifespan})
		done = "sent a password reset link to " + tableCell(u.Email)
	case *nextLogin:
		err = ac.AddRequiredActions(ctx, u.ID, "UPDATE_PASSWORD")
		done = "user " + u.Username + " must choose a new password at the next login"
	default:
		err = ac.ResetPassword(ctx, u.ID, *password, *temporary)
		done = "set the password of user " + u.Username
		if *temporary {
			done += " (to be changed at the next login)"
		}
	}
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(e.stdout, done)
	return nil
}

func (e usersEnv) logout(ctx context.Context, args []string) error {
	const synopsis = "users logout USER"
	fs := newFlagSet("users logout", synopsis, e.stderr)
	conn := addConnFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneUser(pos, synopsis)
	if err != nil {
		return err
	}
	ac, u, err := e.lookup(ctx, conn, ref)
	if err != nil {
		return err
	}
	if err := ac.LogoutUser(ctx, u.ID); err != nil {
		return fail(err)
	}
	fmt.Fprintf(e.stdout, "ended every session of user %s\n", u.Username)
	return nil
}

func (e usersEnv) sessions(ctx context.Context, args []string) error {
	const synopsis = "users sessions USER [--json]"
	fs := newFlagSet("users sessions", synopsis, e.stderr)
	conn := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneUser(pos, synopsis)
	if err != nil {
		return err
	}
	ac, u, err := e.lookup(ctx, conn, ref)
	if err != nil {
		return err
	}
	list, err := ac.UserSessions(ctx, u.ID)
	if err != nil {
		return fail(err)
	}
	if list == nil {
		list = []admin.UserSession{}
	}
	if *asJSON {
		return writeJSON(e.stdout, list)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tIP\tSTARTED\tLAST ACCESS\tCLIENTS")
	for _, s := range list {
		clients := make([]string, 0, len(s.Clients))
		for _, c := range s.Clients {
			clients = append(clients, c)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, tableCell(s.IPAddress), s.Started().UTC().Format(time.RFC3339),
			s.LastAccessed().UTC().Format(time.RFC3339), tableCell(strings.Join(slices.Sorted(slices.Values(clients)), ",")))
	}
	return tw.Flush()
}

func (e usersEnv) roles(ctx context.Context, args []string) error {
	const synopsis = "users roles add|remove USER ROLE... [--client CLIENT]"
	if len(args) == 0 || (args[0] != "add" && args[0] != "remove") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(e.stderr, "Usage: cloakroom %s\n", synopsis)
			return nil
		}
		return usageError("want add or remove\nUsage: cloakroom %s", synopsis)
	}
	op := args[0]
	fs := newFlagSet("users roles "+op, synopsis, e.stderr)
	conn := addConnFlags(fs)
	clientID := fs.String("client", "", "the roles are roles of this client (its client id); default: realm roles")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usageError("want USER and at least one ROLE\nUsage: cloakroom %s", synopsis)
	}
	ac, err := conn.client(e)
	if err != nil {
		return err
	}
	u, err := findUser(ctx, ac, pos[0])
	if err != nil {
		return fail(err)
	}
	names := pos[1:]
	switch {
	case *clientID == "" && op == "add":
		err = ac.AddUserRealmRoles(ctx, u.ID, names...)
	case *clientID == "":
		err = ac.RemoveUserRealmRoles(ctx, u.ID, names...)
	case op == "add":
		err = ac.AddUserClientRoles(ctx, u.ID, *clientID, names...)
	default:
		err = ac.RemoveUserClientRoles(ctx, u.ID, *clientID, names...)
	}
	if err != nil {
		return fail(err)
	}
	kind := "realm role(s)"
	if *clientID != "" {
		kind = "role(s) of client " + *clientID
	}
	verb := map[string]string{"add": "granted", "remove": "removed"}[op]
	fmt.Fprintf(e.stdout, "%s %s %s: user %s\n", verb, kind, strings.Join(names, ", "), u.Username)
	return nil
}

func (e usersEnv) groups(ctx context.Context, args []string) error {
	const synopsis = "users groups join|leave USER GROUP"
	if len(args) == 0 || (args[0] != "join" && args[0] != "leave") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintf(e.stderr, "Usage: cloakroom %s\n", synopsis)
			return nil
		}
		return usageError("want join or leave\nUsage: cloakroom %s", synopsis)
	}
	op := args[0]
	fs := newFlagSet("users groups "+op, synopsis, e.stderr)
	conn := addConnFlags(fs)
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("want USER and GROUP\nUsage: cloakroom %s", synopsis)
	}
	ac, err := conn.client(e)
	if err != nil {
		return err
	}
	u, err := findUser(ctx, ac, pos[0])
	if err != nil {
		return fail(err)
	}
	g, err := findGroup(ctx, ac, pos[1])
	if err != nil {
		return fail(err)
	}
	if op == "join" {
		err = ac.JoinGroup(ctx, u.ID, g.ID)
	} else {
		err = ac.LeaveGroup(ctx, u.ID, g.ID)
	}
	if err != nil {
		return fail(err)
	}
	verb := map[string]string{"join": "added user %s to group %s\n", "leave": "removed user %s from group %s\n"}[op]
	fmt.Fprintf(e.stdout, verb, u.Username, g.Path)
	return nil
}

// findGroup resolves GROUP: a path ("/staff/editors") or a name that must
// be unique in the realm.
func findGroup(ctx context.Context, ac *admin.Client, ref string) (*admin.Group, error) {
	if strings.HasPrefix(ref, "/") {
		g, err := ac.GroupByPath(ctx, ref)
		if errors.Is(err, admin.ErrNotFound) {
			return nil, fmt.Errorf("no group with path %q in realm %s", ref, ac.RealmName())
		}
		return g, err
	}
	tops, err := ac.ListGroups(ctx, admin.GroupQuery{Search: ref})
	if err != nil {
		return nil, err
	}
	var found []admin.Group
	var walk func([]admin.Group)
	walk = func(gs []admin.Group) {
		for _, g := range gs {
			if g.Name == ref {
				found = append(found, g)
			}
			walk(g.SubGroups)
		}
	}
	walk(tops)
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no group named %q in realm %s", ref, ac.RealmName())
	case 1:
		return &found[0], nil
	}
	paths := make([]string, len(found))
	for i, g := range found {
		paths[i] = g.Path
	}
	return nil, fmt.Errorf("group name %q is ambiguous: give one of the paths %s", ref, strings.Join(paths, ", "))
}

// openDirectory opens the --db of sync: sqlite:PATH or postgres://...
func openDirectory(ctx context.Context, db string, opts ...directory.Option) (*directory.Directory, error) {
	switch {
	case strings.HasPrefix(db, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(db, "sqlite:"), "//")
		if path == "" {
			return nil, usageError("--db sqlite: needs a path, e.g. sqlite:users.db")
		}
		return directory.OpenSQLite(path, opts...)
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		return directory.OpenPostgres(ctx, db, opts...)
	case db == "":
		return nil, usageError("--db is required: sqlite:PATH or postgres://...")
	}
	return nil, usageError("--db must be sqlite:PATH or postgres://..., not %q", redactDSN(db))
}

// redactDSN hides a password in a connection string shown in a message.
func redactDSN(s string) string {
	if i := strings.Index(s, "@"); i >= 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			return s[:j+3] + "…" + s[i:]
		}
		return "…" + s[i:]
	}
	return s
}

func (e usersEnv) sync(ctx context.Context, args []string) error {
	const synopsis = "users sync --db sqlite:PATH|postgres://... [--resume] [--page-size N] [--batch-size N]"
	fs := newFlagSet("users sync", synopsis, e.stderr)
	conn := addConnFlags(fs)
	db := fs.String("db", "", "the local user table: sqlite:PATH or postgres://... (or CLOAKROOM_DIRECTORY_DB)")
	resume := fs.Bool("resume", false, "continue an interrupted run from its checkpoint")
	pageSize := fs.Int("page-size", directory.DefaultSyncPageSize, "users per Keycloak request")
	batchSize := fs.Int("batch-size", directory.DefaultSyncBatchSize, "users written per transaction")
	quiet := fs.Bool("quiet", false, "print only the summary")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *db == "" {
		*db = e.getenv("CLOAKROOM_DIRECTORY_DB")
	}
	if *pageSize <= 0 || *batchSize <= 0 {
		return usageError("--page-size and --batch-size must be positive")
	}
	ac, err := conn.client(e)
	if err != nil {
		return err
	}
	dir, err := openDirectory(ctx, *db, directory.WithAdmin(ac), directory.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return fail(err)
	}
	defer dir.Close()
	p := &progressPrinter{w: e.stdout, tty: e.stdoutTTY, quiet: *quiet}
	rep, err := dir.Sync(ctx, directory.SyncOptions{PageSize: *pageSize, BatchSize: *batchSize, Resume: *resume, Progress: p.update})
	p.done()
	e.summary(rep)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return &exitError{code: 1, err: fmt.Errorf("interrupted: run the same command with --resume to continue run %s", rep.RunID)}
		}
		var ae *admin.Error
		if errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
			return &exitError{code: 1, err: describe(err)} // retrying will not help
		}
		return &exitError{code: 1, err: fmt.Errorf("%v (run the same command with --resume to continue)", describe(err))}
	}
	return nil
}

func (e usersEnv) summary(rep directory.SyncReport) {
	if rep.RunID == "" {
		return
	}
	c := rep.SyncCounts
	rate := ""
	if s := rep.Duration.Seconds(); s > 0 && c.Seen > 0 {
		rate = fmt.Sprintf(", %.0f users/s", float64(c.Seen)/s)
	}
	resumed := ""
	if rep.Resumed {
		resumed = " (resumed; counts of the whole run)"
	}
	fmt.Fprintf(e.stdout, "sync run %s%s: %d Keycloak users in %s%s\n", rep.RunID, resumed, c.Seen, rep.Duration.Round(time.Millisecond), rate)
	fmt.Fprintf(e.stdout, "  created %d, updated %d, unchanged %d, reactivated %d, deactivated %d, errors %d\n",
		c.Created, c.Updated, c.Unchanged, c.Reactivated, c.Deactivated, c.Errors)
	for _, u := range rep.DeactivatedUsers {
		fmt.Fprintf(e.stdout, "  deactivated: %s (id %d, sub %s): %s\n", tableCell(u.Username), u.ID, u.Subject, u.Reason)
	}
	if n := c.Deactivated - len(rep.DeactivatedUsers); n > 0 && len(rep.DeactivatedUsers) > 0 {
		fmt.Fprintf(e.stdout, "  ... and %d more deactivated\n", n)
	}
	for _, f := range rep.Failures {
		fmt.Fprintf(e.stdout, "  failed: sub %s: %v\n", f.Subject, describe(f.Err))
	}
}

// progressPrinter draws a bar on a terminal, plain lines (at most one a
// second, and one per phase) elsewhere.
type progressPrinter struct {
	w     io.Writer
	tty   bool
	quiet bool
	drawn bool
	last  time.Time
	phase directory.SyncPhase
}

func (p *progressPrinter) update(s directory.SyncProgress) {
	if p.quiet {
		return
	}
	c := s.SyncCounts
	if p.tty {
		const width = 30
		bar := strings.Repeat(" ", width)
		pct := ""
		if s.Total > 0 {
			done := min(width, c.Seen*width/s.Total)
			bar = strings.Repeat("#", done) + strings.Repeat(".", width-done)
			pct = fmt.Sprintf(" %3d%%", min(100, c.Seen*100/s.Total))
		}
		rate := ""
		if sec := s.Elapsed.Seconds(); sec > 0 {
			rate = fmt.Sprintf(" %6.0f/s", float64(c.Seen)/sec)
		}
		fmt.Fprintf(p.w, "\r[%s]%s %d/%d users%s  %-6s", bar, pct, c.Seen, s.Total, rate, s.Phase)
		p.drawn = true
		return
	}
	now := time.Now()
	if s.Phase == p.phase && now.Sub(p.last) < time.Second {
		return
	}
	p.phase, p.last = s.Phase, now
	fmt.Fprintf(p.w, "sync: %s: %d/%d users (created %d, updated %d, unchanged %d, reactivated %d, deactivated %d, errors %d)\n",
		s.Phase, c.Seen, s.Total, c.Created, c.Updated, c.Unchanged, c.Reactivated, c.Deactivated, c.Errors)
}

func (p *progressPrinter) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
