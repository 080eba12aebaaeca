package session

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// A session kept decoded shares one string among its string fields and
// one slice between its two JSON members (pack), the access token aside, with the same values,
// nil kept nil, and no append to one member able to reach the next.
func TestStatePack(t *testing.T) {
	t.Parallel()
	want := State{Subject: "sub", SID: "sid", Issuer: "iss", AccessToken: "at.at.at", RefreshToken: "rt",
		IDToken: "it", StepUpACR: "gold", CSRFToken: "csrf", IDClaims: json.RawMessage(`{"a":1}`), UserinfoClaims: json.RawMessage(`{}`),
		Values: map[string]string{"k": "v"}}
	for _, tt := range []struct {
		name string
		s    State
	}{{"full", want}, {"no userinfo", State{Subject: "s", AccessToken: "a", IDClaims: json.RawMessage(`{}`)}}, {"empty", State{}}} {
		s := tt.s.copy()
		s.pack()
		visible := *s
		visible.packed = ""
		if !reflect.DeepEqual(visible, tt.s) {
			t.Errorf("%s: packed %+v, want %+v", tt.name, *s, tt.s)
		}
		if tt.s.UserinfoClaims == nil && s.UserinfoClaims != nil {
			t.Errorf("%s: nil UserinfoClaims became %q", tt.name, s.UserinfoClaims)
		}
		if cap(s.IDClaims) != len(s.IDClaims) {
			t.Errorf("%s: IDClaims has room to grow into UserinfoClaims", tt.name)
		}
	}
	s := want.copy()
	s.pack()
	if unsafe.Pointer(unsafe.StringData(s.SID)) != unsafe.Add(unsafe.Pointer(unsafe.StringData(s.Subject)), len(s.Subject)) ||
		unsafe.Pointer(unsafe.StringData(s.CSRFToken)) != unsafe.Add(unsafe.Pointer(unsafe.StringData(s.Subject)), len(s.Subject)+len(s.SID)+len(s.Issuer)+len(s.RefreshToken)+len(s.IDToken)+len(s.StepUpACR)) {
		t.Error("the strings are not one allocation")
	}
	if unsafe.Pointer(&s.UserinfoClaims[0]) != unsafe.Add(unsafe.Pointer(&s.IDClaims[0]), len(s.IDClaims)) {
		t.Error("the JSON members are not one allocation")
	}
	// Saved again unchanged (Touch): the same allocations; with an equal
	// value from elsewhere: that value is let go of; with a new token: new
	// allocations.
	again := s.copy()
	again.IDToken = string([]byte(want.IDToken))
	again.pack()
	if unsafe.StringData(again.IDToken) != unsafe.StringData(s.IDToken) || unsafe.StringData(again.Subject) != unsafe.StringData(s.Subject) {
		t.Error("an unchanged session was packed anew")
	}
	again.RefreshToken = "rt2"
	again.pack()
	if again.RefreshToken != "rt2" || again.AccessToken != want.AccessToken || unsafe.StringData(again.Subject) == unsafe.StringData(s.Subject) {
		t.Errorf("a changed session kept its old allocation: %+v", again)
	}
}

// What a Manager keeps decoded is packed: a session loaded again comes
// from one allocation of strings, whether it was created here or decoded
// from the store.
func TestManagerKeepsSessionsPacked(t *testing.T) {
	t.Parallel()
	kr, err := NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemoryStore()
	for _, fresh := range []bool{false, true} {
		m, err := NewManager(Config{Store: store, Keyring: kr})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		if err := m.Create(context.Background(), w, &State{Subject: "u", AccessToken: "access", RefreshToken: "refresh"}); err != nil {
			t.Fatal(err)
		}
		id := w.Result().Cookies()[0].Value
		if fresh {
			// Another instance: the session comes from the store.
			if m, err = NewManager(Config{Store: store, Keyring: kr}); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Load(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}
		s, err := m.Load(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if s.ID != id {
			t.Errorf("from the store %v: loaded with ID %q, want the cookie's", fresh, s.ID)
		}
		if held, ok := m.decoded.Get(s.key, time.Now().Unix()); !ok || held.session.ID != "" {
			t.Errorf("from the store %v: the session held decoded keeps its cookie value (%v)", fresh, ok)
		}
		if s.RefreshToken != "refresh" || unsafe.Pointer(unsafe.StringData(s.RefreshToken)) != unsafe.Add(unsafe.Pointer(unsafe.StringData(s.Subject)), len(s.Subject)+len(s.SID)+len(s.Issuer)) {
			t.Errorf("from the store %v: the session held decoded is not packed", fresh)
		}
	}
}
