// Package admin is a client for Keycloak's Admin REST API
// ({base}/admin/realms/{realm}/...): find, create, update, disable and
// delete users, reset passwords, send execute-actions emails, end
// sessions, and manage role mappings, group memberships and
// identity-provider links. It is what python-keycloak's KeycloakAdmin gives
// Python services. The package Example is a runnable program against
// keycloaktest: find a user, update them, page through every user, tell
// errors apart.
//
// # Authentication
//
// A Client authenticates as a service account (Config.Client, the
// client_credentials grant) or as an admin user (Config.Username and
// Password, the password grant against "admin-cli"; Config.AuthRealm may
// be the master realm while Config.Realm is the realm managed). The token
// is cached, renewed shortly before it expires, and renewed once more when
// Keycloak answers 401.
//
// The account needs client roles of the realm's built-in
// "realm-management" client. A 403 comes back as an *APIError matching
// ErrForbidden whose message names the role the operation probably needs:
//
//	operation                                    role (realm-management)
//	ListUsers, AllUsers, CountUsers,             query-users (view-users to see
//	FindUserByUsername                           the users: with query-users alone
//	                                             Keycloak answers an empty list)
//	GetUser, UserSessions, UserRealmRoles,       view-users
//	UserClientRoles, UserGroups, GroupMembers,
//	GroupByPath, FederatedIdentities
//	CreateUser, UpdateUser, DeleteUser,          manage-users
//	EnableUser, DisableUser,
//	DisableUserAndLogout, AddRequiredActions,
//	ExecuteActionsEmail, ResetPassword,
//	ResetTemporaryPassword, DeleteSession,
//	LogoutUser, JoinGroup,
//	LeaveGroup, (Un)LinkFederatedIdentity
//	Add/RemoveUserRealmRoles                     manage-users and view-users
//	RealmRoles                                   view-realm
//	Add/RemoveUserClientRoles, ClientRoles,      manage-users / view-clients
//	ClientByClientID                             (with only query-clients Keycloak
//	                                             lists no clients)
//	ListGroups                                   query-groups (or view-users)
//
// view-users contains query-users and query-groups; manage-users implies
// viewing and querying users; realm-admin holds every role. With
// query-users, an unknown user id is a real ErrNotFound; without it
// Keycloak answers 403 for unknown ids too, so that ids cannot be probed.
//
// # Errors and retries
//
// Error answers are *APIError values carrying Keycloak's "error",
// "errorMessage", "field" and "params" members (DecodeError parses every
// shape) and matching ErrNotFound, ErrConflict (ErrDuplicateUsername,
// ErrDuplicateEmail), ErrBadRequest, ErrForbidden, ErrUnauthorized,
// ErrRateLimited or ErrServer. They never contain tokens or passwords.
// GET, PUT and DELETE are retried with exponential backoff and jitter on
// 5xx, 429 and connection errors (Config.MaxAttempts, default 3); POST
// (CreateUser, LogoutUser, linking) is retried only when the connection
// failed before the request was sent, so nothing is created twice. Every
// call honours its context.
package admin
