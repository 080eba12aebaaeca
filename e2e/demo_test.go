package e2e

import (
	"bufio"
	"io"
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

// TestDemoInBrowser builds the cloakroom binary and runs `cloakroom demo`
// as the README says, then uses it from a real browser: log in as alice,
// read the identity table, call the API from the page's button, open the
// admin page. Ctrl-C (SIGINT) with the browser still connected stops it
// promptly and cleanly (exit status 0).
func TestDemoInBrowser(t *testing.T) {
	if os.Getenv("CLOAKROOM_TEST_CHROMIUM") == "" {
		t.Skip("set CLOAKROOM_TEST_CHROMIUM=/usr/bin/chromium to run the browser tests")
	}
	bin := filepath.Join(t.TempDir(), "cloakroom")
	build := exec.Command("go", "build", "-o", bin, "./cmd/cloakroom")
	build.Dir = ".." // the main module
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "demo", "--listen", "127.0.0.1:0", "--idp-listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var out strings.Builder
	var outMu sync.Mutex
	banner := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			outMu.Lock()
			out.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				banner <- out.String()
			}
			outMu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	var text0 string
	select {
	case text0 = <-banner:
	case err := <-exited:
		t.Fatalf("demo exited early: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("no banner from the demo")
	}
	m := regexp.MustCompile(`open:\s+(http://127\.0\.0\.1:\d+)/\n`).FindStringSubmatch(text0)
	if m == nil {
		t.Fatalf("banner:\n%s", text0)
	}
	gw := m[1]

	ctx := chromium(t)
	err = chromedp.Do(ctx,
		chromedp.Navigate(gw+"/"),
		chromedp.WaitVisible(chromedp.CSS("#kc-form-login")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "alice"),
		chromedp.Click(chromedp.CSS("#kc-login")),
		chromedp.WaitVisible(chromedp.CSS("#identity")),
	)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	for sel, want := range map[string]string{"#username": "alice", "#email": "alice@example.com", "#greeting": "alice"} {
		if got, err := text(ctx, sel); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", sel, got, err, want)
		}
	}
	if sub, err := text(ctx, "#user"); err != nil || len(sub) != 36 {
		t.Errorf("#user (sub) = %q, %v", sub, err)
	}

	// The API page's button calls /api/hello with the page's session,
	// once the page has loaded (its script attached the handler).
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#api-page-link")),
		chromedp.WaitVisible(chromedp.CSS("#call-api")),
		pageLoaded,
		chromedp.Click(chromedp.CSS("#call-api"), chromedp.NodeVisible),
	)
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("api-result").textContent.includes("Hello")`))
	}
	if err != nil {
		t.Fatalf("calling the API from the page: %v", err)
	}
	if got, err := text(ctx, "#api-result"); err != nil || !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"message":"Hello, alice!"`) || !strings.Contains(got, `"via":"session"`) {
		t.Errorf("#api-result = %q, %v", got, err)
	}

	err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#admin-link")), chromedp.WaitVisible(chromedp.CSS("#admin")))
	if err != nil {
		t.Fatalf("admin page: %v", err)
	}
	if got, err := text(ctx, "#admin"); err != nil || got != "Welcome to the admin area, alice." {
		t.Errorf("#admin = %q, %v", got, err)
	}

	// Ctrl-C while the browser still holds connections.
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo exit after SIGINT: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the demo did not stop within 15 s of SIGINT")
	}
	t.Logf("stopped %v after SIGINT", time.Since(start).Round(10*time.Millisecond))
	outMu.Lock()
	defer outMu.Unlock()
	if !strings.Contains(out.String(), "cloakroom demo: stopped") {
		t.Errorf("no stop message:\n%s", out.String())
	}
}
