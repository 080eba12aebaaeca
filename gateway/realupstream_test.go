package gateway_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom/gateway"
)

// The attack table against real upstreams that resolve paths their own
// way: nginx serving files (it merges slashes and resolves dot segments,
// also encoded ones) and Python's http.server (it decodes the path,
// then normalizes it). They are the upstreams a bypass would reach; the
// gateway must never hand them a protected file without the role.

const (
	adminSecret = "TOP-SECRET-ADMIN-FILE"
	rootSecret  = "TOP-SECRET-ABOVE-BASE"
	hostSecret  = "TOP-SECRET-ADMIN-HOST"
)

// docroot writes the files both upstreams serve: secrets under /admin, at
// /secret (above /base, where strip_prefix points) and, for nginx, on the
// admin host.
func docroot(t *testing.T) (root, hostRoot string) {
	t.Helper()
	dir := t.TempDir()
	root, hostRoot = filepath.Join(dir, "root"), filepath.Join(dir, "hostroot")
	files := map[string]string{
		"root/admin/secret.txt":     adminSecret,
		"root/admin/index.html":     adminSecret,
		"root/secret":               rootSecret,
		"root/base/x":               "base x",
		"root/base/index.html":      "base index",
		"root/public/x":             "public x",
		"root/x":                    "root x",
		"root/index.html":           "root index",
		"hostroot/x":                hostSecret,
		"hostroot/secret":           hostSecret,
		"hostroot/admin/secret.txt": hostSecret,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// nginx, when started as root, may read as another user.
	for _, d := range []string{dir, root, hostRoot} {
		os.Chmod(d, 0o755)
	}
	return root, hostRoot
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess runs cmd until the test ends and waits for it to accept
// connections on port.
func startProcess(t *testing.T, cmd *exec.Cmd, port int) {
	t.Helper()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", cmd.Path, out.String())
		default:
		}
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s does not listen on %d: %s", cmd.Path, port, out.String())
}

func lookTool(t *testing.T, env string, names ...string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skipf("%s not found (set %s; .ci/run installs it)", names[0], env)
	return ""
}

func startNginx(t *testing.T) string {
	t.Helper()
	bin := lookTool(t, "CLOAKROOM_TEST_NGINX", "nginx", "/usr/sbin/nginx")
	root, hostRoot := docroot(t)
	port := freePort(t)
	runNginx(t, bin, t.TempDir(), port, fmt.Sprintf(`
	server {
		listen 127.0.0.1:%[1]d default_server;
		root %[2]s;
	}
	server {
		listen 127.0.0.1:%[1]d;
		server_name admin.example.com *.corp.example.com;
		root %[3]s;
	}`, port, root, hostRoot))
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// runNginx starts nginx in the foreground, unprivileged, with every path
// under dir and http { servers } as its configuration, and waits for port.
func runNginx(t *testing.T, bin, dir string, port int, servers string) {
	t.Helper()
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
error_log stderr error;
pid %[1]s/nginx.pid;
events { worker_connections 128; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, servers)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf")), port)
}

func startPythonHTTPServer(t *testing.T) string {
	t.Helper()
	bin := lookTool(t, "CLOAKROOM_TEST_PYTHON", "python3")
	root, _ := docroot(t)
	port := freePort(t)
	startProcess(t, exec.Command(bin, "-m", "http.server", fmt.Sprint(port), "--bind", "127.0.0.1", "--directory", root), port)
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

func TestAttacksAgainstRealUpstreams(t *testing.T) {
	t.Parallel()
	upstreams := []struct {
		name  string
		start func(*testing.T) string
		vhost bool // serves the admin host from its own root
	}{
		{"nginx", startNginx, true},
		{"python http.server", startPythonHTTPServer, false},
	}
	for _, u := range upstreams {
		t.Run(u.name, func(t *testing.T) {
			t.Parallel()
			up := u.start(t)
			// The bypass exists without the gateway: prove the upstream
			// resolves the attacks the way the report says, so that this
			// test can fail.
			direct := sendRaw(t, strings.TrimPrefix(up, "http://"), "GET", "/public/..%2fadmin/secret.txt", "x", nil)
			if u.name == "nginx" && !strings.Contains(direct.body, adminSecret) {
				t.Fatalf("nginx does not resolve ..%%2f itself (status %d): the test would prove nothing", direct.status)
			}
			direct = sendRaw(t, strings.TrimPrefix(up, "http://"), "GET", "//admin/secret.txt", "x", nil)
			if !strings.Contains(direct.body, adminSecret) {
				t.Fatalf("%s does not merge slashes itself (status %d): the test would prove nothing", u.name, direct.status)
			}

			e := newEnv(t)
			g := e.start(func(c *gateway.Config) { c.Routes = canonicalRoutes(up) })
			addr := strings.TrimPrefix(g.url, "http://")
			tokens := map[string]string{
				"alice": e.kc.MustToken(t, "alice", "gateway"),
				"bob":   e.kc.MustToken(t, "bob", "gateway"),
			}
			for _, a := range attacks() {
				method, target, host, headers := a.prepare(addr, func(u string) string { return tokens[u] })
				res := sendRaw(t, addr, method, target, host, headers)
				leaked := strings.Contains(res.body, "TOP-SECRET")
				switch {
				case a.user != "alice" && leaked:
					t.Errorf("%s: %s %s (Host %s) without the admin role returned a protected file: %d %.100s", a.name, method, target, host, res.status, res.body)
				case a.upURI == "" && res.status != a.status:
					t.Errorf("%s: %s %s (Host %s): status %d, want the gateway's %d", a.name, method, target, host, res.status, a.status)
				}
			}
			// The positive control: with the role, the same files come back
			// through their canonical paths.
			for _, want := range []struct{ target, host, secret string }{
				{"/admin/secret.txt", addr, adminSecret},
				{"/secret", addr, rootSecret},
				{"/x", "admin.example.com.", hostSecret},
			} {
				if want.secret == hostSecret && !u.vhost {
					continue
				}
				res := sendRaw(t, addr, "GET", want.target, want.host, hdr("Authorization: Bearer "+tokens["alice"]))
				if res.status != 200 || !strings.Contains(res.body, want.secret) {
					t.Errorf("alice: GET %s (Host %s) = %d %.100s, want the file", want.target, want.host, res.status, res.body)
				}
			}
		})
	}
}
