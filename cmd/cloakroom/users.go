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
	"github.com/cloakroom/cloakroom/internal/storeurl"
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
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprintf(e.stderr, "Usage: cloakroom %s\n", usersSynopsis)
		return nil
	}
	for _, cmd := range usersCommands() {
		if cmd.name == sub {
			return e.runCmd(ctx, cmd, rest)
		}
	}
	return usageError("unknown subcommand %q (run 'cloakroom users --help')", sub)
}

// usersCmd is a subcommand of `cloakroom users`: runCmd parses its flags
// (and the connection flags), checks its arguments, connects to Keycloak,
// finds the USER it acts on, and calls its action.
type usersCmd struct {
	name, synopsis string
	// ops, if set, are the operations the first argument chooses among
	// (roles add|remove); the action's setup receives the one chosen.
	ops []string
	// flagsOnly: the subcommand takes no positional argument.
	flagsOnly bool
	// user: the first argument is the USER (an id or username) it acts
	// on, looked up once connected.
	user bool
	// setup defines the subcommand's flags and returns its action.
	setup func(fs *flag.FlagSet, op string) usersAction
}

// usersAction is what a subcommand does once its flags are defined.
type usersAction struct {
	// check validates the arguments before connecting (nil: exactly one
	// USER for user commands).
	check func(c *usersCall) error
	run   func(ctx context.Context, c *usersCall) error
}

// usersCall is a parsed, connected call of a subcommand.
type usersCall struct {
	usersEnv
	synopsis string
	conn     *connFlags
	ac       *admin.Client
	user     *admin.User // the USER, for user commands
	pos      []string
}

func (e usersEnv) runCmd(ctx context.Context, cmd usersCmd, args []string) error {
	name, op := cmd.name, ""
	if len(cmd.ops) > 0 {
		if len(args) == 0 || !slices.Contains(cmd.ops, args[0]) {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fmt.Fprintf(e.stderr, "Usage: cloakroom %s\n", cmd.synopsis)
				return nil
			}
			return usageError("want %s\nUsage: cloakroom %s", strings.Join(cmd.ops, " or "), cmd.synopsis)
		}
		op, args = args[0], args[1:]
		name += " " + op
	}
	fs := newFlagSet("users "+name, cmd.synopsis, e.stderr)
	c := &usersCall{usersEnv: e, synopsis: cmd.synopsis, conn: addConnFlags(fs)}
	act := cmd.setup(fs, op)
	var err error
	if cmd.flagsOnly {
		err = parseFlags(fs, args)
	} else {
		c.pos, err = parseArgs(fs, args)
	}
	if err != nil {
		return err
	}
	check := act.check
	if check == nil && cmd.user {
		check = func(c *usersCall) error { _, err := oneUser(c.pos, c.synopsis); return err }
	}
	if check != nil {
		if err := check(c); err != nil {
			return err
		}
	}
	if c.ac, err = c.conn.client(e); err != nil {
		return err
	}
	if cmd.user {
		if c.user, err = findUser(ctx, c.ac, c.pos[0]); err != nil {
			return fail(err)
		}
	}
	return act.run(ctx, c)
}

// usersCommands is the table of subcommands.
func usersCommands() []usersCmd {
	return []usersCmd{
		{name: "list", synopsis: "users list [TEXT] [--first N] [--max N] [--exact] [--enabled=true|false] [--json]", setup: listCmd("list")},
		{name: "search", synopsis: "users search [TEXT] [--first N] [--max N] [--exact] [--enabled=true|false] [--json]", setup: listCmd("search")},
		{name: "show", synopsis: "users show USER [--json]", user: true, setup: showCmd},
		{name: "create", synopsis: "users create --username U [--email E] [--first-name F] [--last-name L] [--password P [--temporary]]", flagsOnly: true, setup: createCmd},
		{name: "update", synopsis: "users update USER [--email E] [--first-name F] [--last-name L] [--enabled=true|false] [--email-verified=true|false]", user: true, setup: updateCmd},
		{name: "enable", synopsis: "users enable USER", user: true, setup: applyCmd((*admin.Client).EnableUser, "enabled user %s")},
		{name: "disable", synopsis: "users disable USER [--logout]", user: true, setup: disableCmd},
		{name: "delete", synopsis: "users delete USER [--yes]", user: true, setup: deleteCmd},
		{name: "reset-password", synopsis: "users reset-password USER (--email | --next-login | --password P [--temporary])", user: true, setup: resetPasswordCmd},
		{name: "logout", synopsis: "users logout USER", user: true, setup: applyCmd((*admin.Client).LogoutUser, "ended every session of user %s")},
		{name: "sessions", synopsis: "users sessions USER [--json]", user: true, setup: sessionsCmd},
		{name: "roles", synopsis: "users roles add|remove USER ROLE... [--client CLIENT]", ops: []string{"add", "remove"}, user: true, setup: rolesCmd},
		{name: "groups", synopsis: "users groups join|leave USER GROUP", ops: []string{"join", "leave"}, user: true, setup: groupsCmd},
		{name: "sync", synopsis: "users sync --db sqlite:PATH|postgres://... [--resume] [--page-size N] [--batch-size N]", flagsOnly: true, setup: syncCmd},
	}
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
	var ae *admin.APIError
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

// oneUser checks that a subcommand got exactly one USER.
func oneUser(pos []string, synopsis string) (string, error) {
	if len(pos) != 1 {
		return "", usageError("want exactly one USER (id or username)\nUsage: cloakroom %s", synopsis)
	}
	return pos[0], nil
}

// apply makes one call on the USER and says what it did (done has a %s
// for the username).
func (c *usersCall) apply(ctx context.Context, call func(*admin.Client, context.Context, string) error, done string) error {
	if err := call(c.ac, ctx, c.user.ID); err != nil {
		return fail(err)
	}
	return c.done(done, c.user.Username)
}

// done prints what a subcommand did.
func (c *usersCall) done(format string, args ...any) error {
	fmt.Fprintf(c.stdout, format+"\n", args...)
	return nil
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

func listCmd(sub string) func(fs *flag.FlagSet, _ string) usersAction {
	return func(fs *flag.FlagSet, _ string) usersAction {
		first := fs.Int("first", 0, "skip this many users")
		maxN := fs.Int("max", 100, "list at most this many users (0: all)")
		exact := fs.Bool("exact", false, "TEXT must match a whole username, email, first or last name")
		var enabled optBool
		fs.Var(&enabled, "enabled", "only enabled (true) or disabled (false) users")
		asJSON := fs.Bool("json", false, "print JSON instead of a table")
		return usersAction{
			check: func(c *usersCall) error {
				if len(c.pos) > 1 {
					return usageError("want at most one search TEXT (quote it if it has spaces)")
				}
				if sub == "search" && len(c.pos) == 0 {
					return usageError("search needs a TEXT\nUsage: cloakroom %s", c.synopsis)
				}
				if *first < 0 || *maxN < 0 {
					return usageError("--first and --max must not be negative")
				}
				return nil
			},
			run: func(ctx context.Context, c *usersCall) error {
				q := admin.UserQuery{First: *first, Enabled: enabled.v, BriefRepresentation: true}
				if len(c.pos) == 1 {
					q.Search = c.pos[0]
					if *exact {
						q.Search = `"` + c.pos[0] + `"`
					}
				}
				users := []admin.User{}
				if *maxN > 0 {
					q.Max = *maxN
					var err error
					if users, err = c.ac.ListUsers(ctx, q); err != nil {
						return fail(err)
					}
				} else {
					for u, err := range c.ac.AllUsers(ctx, q) {
						if err != nil {
							return fail(err)
						}
						users = append(users, u)
					}
				}
				if *asJSON {
					return writeJSON(c.stdout, users)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tNAME\tENABLED")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\n", u.ID, tableCell(u.Username), tableCell(u.Email), tableCell(strings.TrimSpace(u.FirstName+" "+u.LastName)), u.Enabled)
				}
				return tw.Flush()
			},
		}
	}
}

func showCmd(fs *flag.FlagSet, _ string) usersAction {
	asJSON := fs.Bool("json", false, "print JSON")
	return usersAction{run: func(ctx context.Context, c *usersCall) error {
		u := c.user
		roles, err := c.ac.UserRealmRoles(ctx, u.ID)
		if err != nil {
			return fail(err)
		}
		groups, err := c.ac.UserGroups(ctx, u.ID)
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
			return writeJSON(c.stdout, struct {
				*admin.User
				RealmRoles []string `json:"realmRoles"`
				GroupPaths []string `json:"groups"`
			}{u, roleNames, groupPaths})
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
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
	}}
}

func createCmd(fs *flag.FlagSet, _ string) usersAction {
	var nu admin.NewUser
	fs.StringVar(&nu.Username, "username", "", "username (required)")
	fs.StringVar(&nu.Email, "email", "", "email address")
	fs.StringVar(&nu.FirstName, "first-name", "", "first name")
	fs.StringVar(&nu.LastName, "last-name", "", "last name")
	fs.BoolVar(&nu.EmailVerified, "email-verified", false, "mark the email as verified")
	fs.StringVar(&nu.Password, "password", "", "initial password (flags show in ps: prefer reset-password --email)")
	fs.BoolVar(&nu.TemporaryPassword, "temporary", false, "the user must change the password at the first login")
	fs.BoolVar(&nu.Disabled, "disabled", false, "create the user disabled")
	return usersAction{
		check: func(c *usersCall) error {
			if nu.Username == "" {
				return usageError("--username is required\nUsage: cloakroom %s", c.synopsis)
			}
			if nu.TemporaryPassword && nu.Password == "" {
				return usageError("--temporary needs --password")
			}
			return nil
		},
		run: func(ctx context.Context, c *usersCall) error {
			id, err := c.ac.CreateUser(ctx, nu)
			if err != nil {
				return fail(err)
			}
			return c.done("created user %s with id %s", nu.Username, id)
		},
	}
}

func updateCmd(fs *flag.FlagSet, _ string) usersAction {
	email := fs.String("email", "", "new email address")
	firstName := fs.String("first-name", "", "new first name")
	lastName := fs.String("last-name", "", "new last name")
	var enabled, verified optBool
	fs.Var(&enabled, "enabled", "enable (true) or disable (false) the user")
	fs.Var(&verified, "email-verified", "mark the email verified (true) or not (false)")
	var upd admin.UserUpdate
	return usersAction{
		check: func(c *usersCall) error {
			if _, err := oneUser(c.pos, c.synopsis); err != nil {
				return err
			}
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
			return nil
		},
		run: func(ctx context.Context, c *usersCall) error {
			if err := c.ac.UpdateUser(ctx, c.user.ID, upd); err != nil {
				return fail(err)
			}
			return c.done("updated user %s", c.user.Username)
		},
	}
}

// applyCmd is a subcommand without flags of its own that makes one call
// on the USER.
func applyCmd(call func(*admin.Client, context.Context, string) error, done string) func(*flag.FlagSet, string) usersAction {
	return func(*flag.FlagSet, string) usersAction {
		return usersAction{run: func(ctx context.Context, c *usersCall) error { return c.apply(ctx, call, done) }}
	}
}

func disableCmd(fs *flag.FlagSet, _ string) usersAction {
	logout := fs.Bool("logout", false, "also end every session of the user (issued access tokens stay valid until they expire otherwise)")
	return usersAction{run: func(ctx context.Context, c *usersCall) error {
		if *logout {
			return c.apply(ctx, (*admin.Client).DisableUserAndLogout, "disabled user %s and ended its sessions")
		}
		return c.apply(ctx, (*admin.Client).DisableUser, "disabled user %s")
	}}
}

func deleteCmd(fs *flag.FlagSet, _ string) usersAction {
	yes := fs.Bool("yes", false, "delete without asking")
	return usersAction{
		check: func(c *usersCall) error {
			ref, err := oneUser(c.pos, c.synopsis)
			if err != nil {
				return err
			}
			if !*yes && !c.stdinTTY {
				return usageError("refusing to delete user %q without confirmation: stdin is not a terminal; pass --yes", ref)
			}
			return nil
		},
		run: func(ctx context.Context, c *usersCall) error {
			u := c.user
			if !*yes {
				fmt.Fprintf(c.stderr, "Delete user %s (id %s, %s)? [y/N] ", tableCell(u.Username), u.ID, tableCell(u.Email))
				line, _ := bufio.NewReader(c.stdin).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					fmt.Fprintln(c.stderr, "not deleted")
					return &exitError{code: 1}
				}
			}
			if err := c.ac.DeleteUser(ctx, u.ID); err != nil {
				return fail(err)
			}
			return c.done("deleted user %s (id %s)", u.Username, u.ID)
		},
	}
}

func resetPasswordCmd(fs *flag.FlagSet, _ string) usersAction {
	byEmail := fs.Bool("email", false, "email the user a link to choose a new password")
	nextLogin := fs.Bool("next-login", false, "ask for a new password at the next login")
	password := fs.String("password", "", "set this password (flags show in ps)")
	temporary := fs.Bool("temporary", false, "with --password: the user must change it at the next login")
	lifespan := fs.Duration("lifespan", 0, "with --email: how long the link works (default: the realm's setting, 12h)")
	return usersAction{
		check: func(c *usersCall) error {
			if _, err := oneUser(c.pos, c.synopsis); err != nil {
				return err
			}
			n := 0
			for _, set := range []bool{*byEmail, *nextLogin, *password != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return usageError("pass exactly one of --email, --next-login and --password\nUsage: cloakroom %s", c.synopsis)
			}
			if *temporary && *password == "" {
				return usageError("--temporary goes with --password")
			}
			return nil
		},
		run: func(ctx context.Context, c *usersCall) error {
			u := c.user
			var err error
			var done string
			switch {
			case *byEmail:
				err = c.ac.ExecuteActionsEmail(ctx, u.ID, []string{"UPDATE_PASSWORD"}, admin.ExecuteActionsOptions{Lifespan: *lifespan})
				done = "sent a password reset link to " + tableCell(u.Email)
			case *nextLogin:
				err = c.ac.AddRequiredActions(ctx, u.ID, "UPDATE_PASSWORD")
				done = "user " + u.Username + " must choose a new password at the next login"
			case *temporary:
				err = c.ac.ResetTemporaryPassword(ctx, u.ID, *password)
				done = "set the password of user " + u.Username + " (to be changed at the next login)"
			default:
				err = c.ac.ResetPassword(ctx, u.ID, *password)
				done = "set the password of user " + u.Username
			}
			if err != nil {
				return fail(err)
			}
			return c.done("%s", done)
		},
	}
}

func sessionsCmd(fs *flag.FlagSet, _ string) usersAction {
	asJSON := fs.Bool("json", false, "print JSON")
	return usersAction{run: func(ctx context.Context, c *usersCall) error {
		list, err := c.ac.UserSessions(ctx, c.user.ID)
		if err != nil {
			return fail(err)
		}
		if list == nil {
			list = []admin.UserSession{}
		}
		if *asJSON {
			return writeJSON(c.stdout, list)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
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
	}}
}

func rolesCmd(fs *flag.FlagSet, op string) usersAction {
	clientID := fs.String("client", "", "the roles are roles of this client (its client id); default: realm roles")
	return usersAction{
		check: func(c *usersCall) error {
			if len(c.pos) < 2 {
				return usageError("want USER and at least one ROLE\nUsage: cloakroom %s", c.synopsis)
			}
			return nil
		},
		run: func(ctx context.Context, c *usersCall) error {
			u, names := c.user, c.pos[1:]
			var err error
			switch {
			case *clientID == "" && op == "add":
				err = c.ac.AddUserRealmRoles(ctx, u.ID, names...)
			case *clientID == "":
				err = c.ac.RemoveUserRealmRoles(ctx, u.ID, names...)
			case op == "add":
				err = c.ac.AddUserClientRoles(ctx, u.ID, *clientID, names...)
			default:
				err = c.ac.RemoveUserClientRoles(ctx, u.ID, *clientID, names...)
			}
			if err != nil {
				return fail(err)
			}
			kind := "realm role(s)"
			if *clientID != "" {
				kind = "role(s) of client " + *clientID
			}
			verb := map[string]string{"add": "granted", "remove": "removed"}[op]
			return c.done("%s %s %s: user %s", verb, kind, strings.Join(names, ", "), u.Username)
		},
	}
}

func groupsCmd(_ *flag.FlagSet, op string) usersAction {
	return usersAction{
		check: func(c *usersCall) error {
			if len(c.pos) != 2 {
				return usageError("want USER and GROUP\nUsage: cloakroom %s", c.synopsis)
			}
			return nil
		},
		run: func(ctx context.Context, c *usersCall) error {
			g, err := findGroup(ctx, c.ac, c.pos[1])
			if err != nil {
				return fail(err)
			}
			if op == "join" {
				err = c.ac.JoinGroup(ctx, c.user.ID, g.ID)
			} else {
				err = c.ac.LeaveGroup(ctx, c.user.ID, g.ID)
			}
			if err != nil {
				return fail(err)
			}
			verb := map[string]string{"join": "added user %s to group %s", "leave": "removed user %s from group %s"}[op]
			return c.done(verb, c.user.Username, g.Path)
		},
	}
}

func syncCmd(fs *flag.FlagSet, _ string) usersAction {
	db := fs.String("db", "", "the local user table: sqlite:PATH or postgres://... (or CLOAKROOM_DIRECTORY_DB)")
	resume := fs.Bool("resume", false, "continue an interrupted run (it lists from its checkpoint to the end, then the users before it again, so changes made meanwhile are not missed)")
	pageSize := fs.Int("page-size", directory.DefaultSyncPageSize, "users per Keycloak request")
	batchSize := fs.Int("batch-size", directory.DefaultSyncBatchSize, "users written per transaction")
	quiet := fs.Bool("quiet", false, "print only the summary")
	return usersAction{
		check: func(*usersCall) error {
			if *pageSize <= 0 || *batchSize <= 0 {
				return usageError("--page-size and --batch-size must be positive")
			}
			return nil
		},
		run: func(ctx context.Context, c *usersCall) error {
			if *db == "" {
				*db = c.getenv("CLOAKROOM_DIRECTORY_DB")
			}
			dir, err := openDirectory(ctx, *db, directory.WithAdmin(c.ac), directory.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				return fail(err)
			}
			defer dir.Close()
			p := &progressPrinter{w: c.stdout, tty: c.stdoutTTY, quiet: *quiet}
			rep, err := dir.Sync(ctx, directory.SyncOptions{PageSize: *pageSize, BatchSize: *batchSize, Resume: *resume, Progress: p.update})
			p.done()
			c.summary(rep)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, context.Canceled) {
					return &exitError{code: 1, err: fmt.Errorf("interrupted: run the same command with --resume to continue run %s", rep.RunID)}
				}
				var ae *admin.APIError
				if errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
					return &exitError{code: 1, err: describe(err)} // retrying will not help
				}
				return &exitError{code: 1, err: fmt.Errorf("%v (run the same command with --resume to continue)", describe(err))}
			}
			return nil
		},
	}
}

// openDirectory opens the --db of sync: sqlite:PATH or postgres://...
func openDirectory(ctx context.Context, db string, opts ...directory.Option) (*directory.Directory, error) {
	if db == "" {
		return nil, usageError("--db is required: sqlite:PATH or postgres://...")
	}
	u, err := storeurl.Parse(db)
	switch {
	case errors.Is(err, storeurl.ErrNoPath):
		return nil, usageError("--db sqlite: needs a path, e.g. sqlite:users.db")
	case err == nil && u.Kind == storeurl.SQLite:
		return directory.OpenSQLite(u.Target, opts...)
	case err == nil && u.Kind == storeurl.Postgres:
		return directory.OpenPostgres(ctx, u.Target, opts...)
	}
	return nil, usageError("--db must be sqlite:PATH or postgres://..., not %q", storeurl.Redact(db))
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
