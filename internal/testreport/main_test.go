package main

import (
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	t.Parallel()
	const (
		pass = `{"Action":"start","Package":"p/a"}
{"Action":"run","Package":"p/a","Test":"TestOK"}
{"Action":"output","Package":"p/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"p/a","Test":"TestOK","Output":"    a_test.go:9: noise\n"}
{"Action":"pass","Package":"p/a","Test":"TestOK"}
{"Action":"output","Package":"p/a","Output":"PASS\n"}
{"Action":"output","Package":"p/a","Output":"ok  \tp/a\t0.1s\n"}
{"Action":"pass","Package":"p/a"}
`
		skip = `{"Action":"run","Package":"p/b","Test":"TestRedis"}
{"Action":"output","Package":"p/b","Test":"TestRedis","Output":"=== RUN   TestRedis\n"}
{"Action":"output","Package":"p/b","Test":"TestRedis","Output":"    redis_test.go:20: set CLOAKROOM_TEST_REDIS to run against Redis\n"}
{"Action":"output","Package":"p/b","Test":"TestRedis","Output":"--- SKIP: TestRedis (0.00s)\n"}
{"Action":"skip","Package":"p/b","Test":"TestRedis"}
{"Action":"run","Package":"p/b","Test":"TestRedis2"}
{"Action":"output","Package":"p/b","Test":"TestRedis2","Output":"    x_test.go:3: set CLOAKROOM_TEST_REDIS to run against Redis\n"}
{"Action":"skip","Package":"p/b","Test":"TestRedis2"}
{"Action":"output","Package":"p/b","Output":"ok  \tp/b\t0.1s\n"}
{"Action":"pass","Package":"p/b"}
`
		fail = `{"Action":"run","Package":"p/c","Test":"TestBad"}
{"Action":"output","Package":"p/c","Test":"TestBad","Output":"=== RUN   TestBad\n"}
{"Action":"output","Package":"p/c","Test":"TestBad","Output":"    c_test.go:5: got 1, want 2\n"}
{"Action":"output","Package":"p/c","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}
{"Action":"fail","Package":"p/c","Test":"TestBad"}
{"Action":"output","Package":"p/c","Output":"FAIL\tp/c\t0.1s\n"}
{"Action":"fail","Package":"p/c"}
`
		buildFail = `{"ImportPath":"p/d [p/d.test]","Action":"build-output","Output":"d.go:3:1: syntax error\n"}
{"ImportPath":"p/d [p/d.test]","Action":"build-fail"}
{"Action":"output","Package":"p/d","Output":"FAIL\tp/d [build failed]\n"}
{"Action":"fail","Package":"p/d"}
`
	)
	for _, tc := range []struct {
		name       string
		in         string
		wantFail   bool
		wantErr    bool
		want, deny []string
	}{
		{name: "pass", in: pass, want: []string{"ok  \tp/a", "no test was skipped"}, deny: []string{"noise", "=== RUN", "PASS\n"}},
		{name: "skips summarized", in: pass + skip, want: []string{"2 tests skipped", "set CLOAKROOM_TEST_REDIS to run against Redis", "p/b.TestRedis, p/b.TestRedis2"}, deny: []string{"redis_test.go:20"}},
		{name: "failing test shows its output", in: pass + fail, wantFail: true, want: []string{"c_test.go:5: got 1, want 2", "--- FAIL: TestBad", "FAIL\tp/c"}},
		{name: "build failure", in: buildFail, wantFail: true, want: []string{"d.go:3:1: syntax error", "[build failed]"}},
		{name: "no results", in: "", wantFail: true, wantErr: true},
		{name: "benchmark name and result joined", in: `{"Action":"output","Package":"p/e","Test":"BenchmarkX","Output":"BenchmarkX-2   \t"}
{"Action":"output","Package":"p/e","Test":"BenchmarkX","Output":"       1\t    785437 ns/op\n"}
{"Action":"pass","Package":"p/e"}
`, want: []string{"BenchmarkX-2   \t       1\t    785437 ns/op"}},
		{name: "plain lines pass through", in: "go: downloading x v1\n" + pass, want: []string{"go: downloading x v1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			failed, err := report(strings.NewReader(tc.in), &out)
			if failed != tc.wantFail || (err != nil) != tc.wantErr {
				t.Fatalf("failed=%v err=%v, want failed=%v err=%v\n%s", failed, err, tc.wantFail, tc.wantErr, out.String())
			}
			for _, s := range tc.want {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tc.deny {
				if strings.Contains(out.String(), s) {
					t.Errorf("output has %q:\n%s", s, out.String())
				}
			}
		})
	}
}
