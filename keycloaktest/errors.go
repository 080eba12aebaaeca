package keycloaktest

import (
	"errors"
	"fmt"
)

// Sentinel errors returned (wrapped) by this package; compare with errors.Is.
var (
	// ErrInvalidConfig reports a RealmConfig, UserConfig or ClientConfig that
	// cannot be applied.
	ErrInvalidConfig = errors.New("keycloaktest: invalid configuration")
	// ErrRealmExists reports an attempt to add a realm whose name is taken.
	ErrRealmExists = errors.New("keycloaktest: realm already exists")
	// ErrUserExists reports a duplicate username or user id.
	ErrUserExists = errors.New("keycloaktest: user already exists")
	// ErrUnknownUser reports a username that is not in the realm.
	ErrUnknownUser = errors.New("keycloaktest: unknown user")
	// ErrClientExists reports a duplicate client id.
	ErrClientExists = errors.New("keycloaktest: client already exists")
	// ErrUnknownClient reports a client id that is not in the realm.
	ErrUnknownClient = errors.New("keycloaktest: unknown client")
	// ErrUnknownKey reports a key id that the realm does not publish.
	ErrUnknownKey = errors.New("keycloaktest: unknown key")
	// ErrUnsupportedAlgorithm reports a signature or password-hash algorithm
	// this package does not implement.
	ErrUnsupportedAlgorithm = errors.New("keycloaktest: unsupported algorithm")
	// ErrInvalidRealmFile reports a realm-export document that cannot be
	// loaded. The concrete error is a *RealmFileError naming the JSON path.
	ErrInvalidRealmFile = errors.New("keycloaktest: invalid realm file")
	// ErrServerState reports Start on a running or closed server.
	ErrServerState = errors.New("keycloaktest: server state")
	// ErrInvalidTokenOption reports TokenOptions that contradict each other.
	ErrInvalidTokenOption = errors.New("keycloaktest: invalid token option")
)

// RealmFileError is a problem at one place in a realm-export document.
// It matches ErrInvalidRealmFile with errors.Is and unwraps to the cause.
type RealmFileError struct {
	// Path is the JSON path of the offending value, e.g.
	// "users[2].credentials[0].type".
	Path string
	// Err is the cause.
	Err error
}

// Error implements error as "path: cause".
func (e *RealmFileError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("realm file: %v", e.Err)
	}
	return fmt.Sprintf("realm file: %s: %v", e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *RealmFileError) Unwrap() error { return e.Err }

// Is makes every RealmFileError match ErrInvalidRealmFile.
func (e *RealmFileError) Is(target error) bool { return target == ErrInvalidRealmFile }
