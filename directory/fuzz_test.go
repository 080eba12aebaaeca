package directory

import (
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/cloakroom/cloakroom"
)

// The JSON columns are read back from a database others can write to:
// any content gives a value or ErrCorrupt, never a panic, and what the
// encoders write decodes to the same value.
func FuzzDecodeColumns(f *testing.F) {
	for _, s := range []string{``, `[]`, `{}`, `["a","b"]`, `{"shop":["buyer"]}`, `{"a":1,"b":{"c":[1,2]}}`,
		`[1,2`, `{"a":}`, `null`, `"x"`, `{} {}`, `{"a":null}`, "\xff", `[` + string(make([]byte, 10)) + `]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRealmRoles(b); err == nil {
			if r == nil {
				t.Fatal("nil roles")
			}
			back, err := decodeRealmRoles([]byte(encodeRealmRoles(r)))
			if err != nil || !reflect.DeepEqual(back, r) {
				t.Fatalf("realm roles round trip: %v %v", back, err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("realm roles error %v is not ErrCorrupt", err)
		}
		if m, err := decodeClientRoles(b); err == nil {
			back, err := decodeClientRoles([]byte(encodeClientRoles(m)))
			if err != nil || !reflect.DeepEqual(back, m) {
				t.Fatalf("client roles round trip: %v %v", back, err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("client roles error %v is not ErrCorrupt", err)
		}
		if m, err := decodeExtra(b); err == nil {
			enc, err := encodeExtra(m)
			if err != nil {
				t.Fatal(err)
			}
			back, err := decodeExtra([]byte(enc))
			if err != nil || !reflect.DeepEqual(back, m) {
				t.Fatalf("extra round trip: %v %v", back, err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("extra error %v is not ErrCorrupt", err)
		}
	})
}

// A checkpoint is either refused as corrupt or valid and stable.
func FuzzParseCheckpoint(f *testing.F) {
	good := (&checkpoint{V: 1, RunID: "0123456789abcdef0123456789abcdef", Phase: PhaseUsers, First: 500, Started: 1700000000000,
		Counts: SyncCounts{Seen: 500, Created: 500}}).encode()
	f.Add("0123456789abcdef0123456789abcdef", []byte(good))
	f.Add("0123456789abcdef0123456789abcdef", []byte(`{"v":1,"run":"0123456789abcdef0123456789abcdef","phase":"verify","first":-1}`))
	f.Add("0123456789abcdef0123456789abcdef", []byte(`{"v":1,"run":"0123456789abcdef0123456789abcdef","phase":"users","first":20,"started":1,"pass":2,"start":700,"wrapped":true}`))
	f.Add("0123456789abcdef0123456789abcdef", []byte(`{"v":1,"run":"0123456789abcdef0123456789abcdef","phase":"users","started":1,"pass":-1,"start":-5}`))
	f.Add("x", []byte(`{"v":2}`))
	f.Add("0123456789abcdef0123456789abcdef", []byte(`{"v":1,"run":"0123456789abcdef0123456789abcdef","phase":"done","started":1,"extra":1}`))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, runID string, b []byte) {
		cp, err := parseCheckpoint(runID, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if cp.RunID != runID || cp.First < 0 || cp.AfterID < 0 || cp.Start < 0 || cp.Pass < 0 || cp.Counts.Seen < 0 {
			t.Fatalf("accepted %+v", cp)
		}
		again, err := parseCheckpoint(runID, []byte(cp.encode()))
		if err != nil || *again != *cp {
			t.Fatalf("round trip: %+v %v", again, err)
		}
	})
}

// Token claims (verified, but shaped by realm mappers) always give a
// profile whose values store and read back, or ErrInvalidClaims.
func FuzzProfileFromClaims(f *testing.F) {
	f.Add([]byte(`{"sub":"a","preferred_username":"ann","realm_access":{"roles":["x","x"]},"resource_access":{"c":{"roles":[]}},"dept":[1,{"k":null}]}`))
	f.Add([]byte(`{"sub":"a","email":5,"given_name":null,"iat":1.5,"auth_time":-3}`))
	f.Add([]byte(`{"sub":""}`))
	d := &Directory{log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := cloakroom.ParseClaims(payload)
		if err != nil {
			return
		}
		p, err := d.profileOf(c)
		if err != nil {
			if !errors.Is(err, ErrInvalidClaims) {
				t.Fatalf("error %v is not ErrInvalidClaims", err)
			}
			return
		}
		u := newUserFromProfile(p, time.Now().UTC())
		enc, err := encodeExtra(u.Extra)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) > maxExtraBytes+2 {
			t.Fatalf("extra is %d bytes", len(enc))
		}
		if _, err := decodeExtra([]byte(enc)); err != nil {
			t.Fatal(err)
		}
		if _, err := decodeClientRoles([]byte(encodeClientRoles(u.ClientRoles))); err != nil {
			t.Fatal(err)
		}
		if !json.Valid([]byte(encodeRealmRoles(u.RealmRoles))) {
			t.Fatal("realm roles not JSON")
		}
	})
}
