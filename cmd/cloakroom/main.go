// Command cloakroom is Keycloak single sign-on in one binary: a gateway
// that protects any HTTP application, a Keycloak-compatible development
// server and token tools.
//
//	cloakroom demo [--listen 127.0.0.1:8000] [--idp-listen 127.0.0.1:8080]
//	cloakroom serve --issuer URL --client-id ID --client-secret S --upstream URL
//	cloakroom dev [--listen 127.0.0.1:8080] [--realm-file realm.json]
//	cloakroom token verify --issuer URL [--audience A] < token
//	cloakroom token decode < token
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries a process exit code through the command functions.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError marks bad command-line usage (exit status 2).
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"demo", "run provider, sample app and gateway in one process: log in at http://127.0.0.1:8000", runDemo},
		{"dev", "run the Keycloak-compatible development server (keycloaktest)", func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
			return runDev(ctx, args, stdout, stderr)
		}},
		{"serve", "run the gateway: Keycloak login and token checks in front of any HTTP app", runServe},
		{"token", "verify or decode a token read on stdin", runToken},
		{"users", "manage Keycloak users (list, show, create, disable, ...) and sync a local user table", runUsers},
		{"version", "print the version", func(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "cloakroom", version())
			return nil
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "cloakroom: Keycloak single sign-on, token validation and user management for Go services")
	fmt.Fprintln(w, "\nUsage: cloakroom <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'cloakroom <command> -h' for a command's flags.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdin, stdout, stderr)
		if err == nil || errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errDevUsage) {
			fmt.Fprintf(stderr, "%v\n", err)
			return 2
		}
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintf(stderr, "cloakroom %s: %v\n", c.name, ee.err)
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "cloakroom %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "cloakroom: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cloakroom "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cloakroom %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
