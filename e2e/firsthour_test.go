package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// process is a cloakroom command run as a user runs it, its output kept.
type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startProcess runs bin with args and waits until a line of its output
// (stdout or stderr) contains ready.
func startProcess(t *testing.T, bin, ready string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Dir = t.TempDir()
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(r)
		once := sync.Once{}
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), ready) {
				once.Do(func() { close(seen) })
			}
		}
	}()
	go func() { _ = p.cmd.Wait(); w.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	})
	select {
	case <-seen:
	case <-p.done:
		t.Fatalf("%s %s exited:\n%s", filepath.Base(bin), args[0], p.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s %s not ready:\n%s", filepath.Base(bin), args[0], p.output())
	}
	return p
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestFirstHour is the "done when", as a new user does it: run
// `cloakroom dev`, then `cloakroom serve` with nothing but the issuer,
// client id and secret dev printed (and the README's route example), log
// in through the browser, be refused a page with words a person
// understands, sign out and be told so. No realm editing, default ports
// replaced by free ones only so that tests can run side by side.
func TestFirstHour(t *testing.T) {
	ctx := chromium(t)
	bin := filepath.Join(t.TempDir(), "cloakroom")
	build := exec.Command("go", "build", "-o", bin, "./cmd/cloakroom")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	dev := startProcess(t, bin, "Press Ctrl-C", "dev", "--listen", freePort(t))
	banner := dev.output()
	issuer := regexp.MustCompile(`issuer:\s+(\S+)`).FindStringSubmatch(banner)
	secret := regexp.MustCompile(`(?m)^\s+cloakroom\s+secret:\s+(\S+)`).FindStringSubmatch(banner)
	if issuer == nil || secret == nil {
		t.Fatalf("dev's banner lacks the issuer or the client secret:\n%s", banner)
	}

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>app</title><p id="who">%s at %s</p><a id="logout-link" href="/_cloakroom/logout">sign out</a>`,
			r.Header.Get("X-Forwarded-Preferred-Username"), r.URL.Path)
	}))
	t.Cleanup(app.Close)
	listen := freePort(t)
	config := filepath.Join(t.TempDir(), "gateway.yaml")
	yaml := fmt.Sprintf(`issuer: %s
client_id: cloakroom
session:
  store: "memory:"
routes:
  - {path: /admin, upstream: %q, realm_roles: {any: [admin]}}
  - {path: /, upstream: %q}
`, issuer[1], app.URL, app.URL)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := startProcess(t, bin, "gateway listening", "serve", "--config", config, "--listen", listen, "--client-secret", secret[1])
	gw := "http://" + listen

	body := func() string {
		s, err := text(ctx, "body")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(gw+"/admin/reports"),
		chromedp.WaitVisible(chromedp.CSS("#kc-form-login")),
		chromedp.SendKeys(chromedp.CSS("#username"), "bob"),
		chromedp.SendKeys(chromedp.CSS("#password"), "bob"),
		chromedp.Click(chromedp.CSS("#kc-login")),
		chromedp.WaitVisible(chromedp.CSS("#switch-user")),
	); err != nil {
		t.Fatalf("login through the gateway on %s: %v\ndev:\n%s\nserve:\n%s", gw, err, dev.output(), serve.output())
	}
	refusal := body()
	for _, want := range []string{"Access denied", `You are signed in as bob, but this page requires the role "admin".`, "Go to the home page", "Sign in as someone else"} {
		if !strings.Contains(refusal, want) {
			t.Errorf("the 403 page lacks %q:\n%s", want, refusal)
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(gw+"/"),
		chromedp.WaitVisible(chromedp.CSS("#who")),
	); err != nil {
		t.Fatal(err)
	}
	if who := body(); !strings.Contains(who, "bob at /") {
		t.Errorf("the app saw %q", who)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#logout-link")),
		chromedp.WaitVisible(chromedp.CSS("#logout")),
		pageLoaded,
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#login")),
	); err != nil {
		t.Fatalf("logout: %v\nserve:\n%s", err, serve.output())
	}
	if out := body(); !strings.Contains(out, "You have been signed out.") || !strings.Contains(out, "Sign in again") {
		t.Errorf("after logout:\n%s", out)
	}
	for _, p := range []*process{dev, serve} {
		if out := p.output(); strings.Contains(out, `"level":"ERROR"`) || strings.Contains(out, "level=ERROR") {
			t.Errorf("an error was logged:\n%s", out)
		}
	}
}
