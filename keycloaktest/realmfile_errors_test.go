package keycloaktest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadRealmFileMessages: the errors a developer reads for a broken
// realm file name the file, the JSON path and, where there is one, the
// line and column; never a byte offset, a Go parser phrase or this
// package's name.
func TestLoadRealmFileMessages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, doc string
		want      string // the whole message after the file name
	}{
		{"empty", "", " is empty"},
		{"blank", " \n\t\n", " is empty"},
		{"truncated", "{\"realm\": \"x\",\n", ":2:1: invalid JSON: the document ends early (an object, array or string is not closed)"},
		{"misspelt literal", "{\"realm\": \"x\",\n  \"enabled\": tru }", ":2:17: invalid JSON: unexpected character ' ' in true, false or null (misspelt?)"},
		{"trailing comma", "{\"realm\": \"x\",\n  \"users\": [\n    {\"username\": \"a\",}\n  ]\n}", `:3:22: invalid JSON: unexpected character '}' where a "quoted" member name should be (a comma too many?)`},
		{"missing comma", "{\"realm\": \"x\"\n \"enabled\": true}", `:2:2: invalid JSON: unexpected character '"' after a member (a missing "," or "}"?)`},
		{"text after", `{"realm": "x"} x`, ":1:16: invalid JSON: unexpected character 'x' after the end of the document"},
		{"byte order mark", "\xef\xbb\xbf{\"realm\": \"x\"}", ":1:1: invalid JSON: the file starts with a byte order mark; save it as UTF-8 without BOM"},
		{"several realms", `[{"realm": "a"}]`, ": expected an object, got an array (an export of several realms? a realm file holds one: kc.sh export --realm NAME)"},
		{"wrong type", "{\"realm\": \"x\",\n  \"users\": [\n    {\"username\": \"a\", \"enabled\": \"yes\"}\n  ]\n}", `:3:34: users[0].enabled: expected a boolean, got a string`},
		{"wrong type after non-ASCII", "{\"realm\": \"x\", \"users\": [{\"username\": \"zoë\", \"firstName\": 5}]}", `:1:59: users[0].firstName: expected a string, got a number`},
		{"quoted key", `{"realm":"x","attributes":{"acr.loa.map":"[1]"}}`, `:1:42: attributes["acr.loa.map"]: expected a JSON object of ACR names to integer levels`},
		{"missing member", `{"enabled": true}`, `: realm: missing realm name`},
		{"realm-wide problem", `{"realm":"x","users":[{"username":"a","groups":["/nope"]}]}`, `: user "a": no group with path "/nope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(file, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadRealmFile(file)
			if err == nil {
				t.Fatal("no error")
			}
			if want := "realm file " + file + tc.want; err.Error() != want {
				t.Errorf("got  %s\nwant %s", err, want)
			}
			var fe *RealmFileError
			if !errors.Is(err, ErrInvalidRealmFile) || !errors.As(err, &fe) {
				t.Errorf("%v: not an ErrInvalidRealmFile / *RealmFileError", err)
			}
			for _, bad := range []string{"offset", "keycloaktest", "invalid configuration", "looking for", "literal"} {
				if strings.Contains(strings.TrimPrefix(err.Error(), "realm file "+file), bad) {
					t.Errorf("message has %q: %s", bad, err)
				}
			}
		})
	}
}

func TestLoadRealmFileReadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.json")
	tests := []struct {
		path, want string
		is         error
	}{
		{missing, "read realm file " + missing + ": no such file or directory", os.ErrNotExist},
		{dir, "read realm file " + dir + ": is a directory", nil},
	}
	for _, tc := range tests {
		_, err := LoadRealmFile(tc.path)
		if err == nil || err.Error() != tc.want || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("LoadRealmFile(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
}

// TestParseRealmSyntaxErrors: ParseRealm alone reports line and column too.
func TestParseRealmSyntaxErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ doc, want string }{
		{"", "realm file: the document is empty"},
		{"{\n\"realm\": \"x\",\n\"a\": [1,]\n}", "realm file: line 3, column 9: invalid JSON: unexpected character ']' where a value should be (a comma too many, or a missing value?)"},
		{"{\"realm\": \"a\tb\"}", "realm file: line 1, column 13: invalid JSON: unexpected character inside a string (control characters such as line breaks must be escaped)"},
	}
	for _, tc := range tests {
		_, err := ParseRealm([]byte(tc.doc))
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrInvalidRealmFile) {
			t.Errorf("ParseRealm(%q) = %v\nwant %s", tc.doc, err, tc.want)
		}
	}
}

func TestLocateJSONPath(t *testing.T) {
	t.Parallel()
	doc := []byte(`{"realm": "x", "a.b": {"c": [10, {"d": [true, "here"]}]}, "e": []}`)
	tests := []struct {
		path string
		want string // the document from the found offset, first 6 bytes
		ok   bool
	}{
		{"realm", `"x", "`, true},
		{`["a.b"].c[1].d[1]`, `"here"`, true},
		{`["a.b"].c[0]`, `10, {"`, true},
		{`["a.b"].c`, `[10, {`, true},
		{"e", `[]}`, true},
		{"e[0]", "", false},
		{"nope", "", false},
		{`["a.b"].c[5]`, "", false},
		{"realm.x", "", false},
		{`[`, "", false},
		{`x[abc]`, "", false},
	}
	for _, tc := range tests {
		off, ok := locateJSONPath(doc, tc.path)
		got := ""
		if ok {
			got = string(doc[off:min(off+6, len(doc))])
		}
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("locateJSONPath(%s) = %q %v, want %q %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}
