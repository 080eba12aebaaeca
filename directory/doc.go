// Package directory keeps the application's own user table in step with
// Keycloak: one row per Keycloak user, linked by the immutable token "sub"
// (the Keycloak user id), never by the username, which Keycloak lets
// administrators rename and hands out again after a user is deleted.
//
// The table lives in SQLite (OpenSQLite: one file, WAL mode, pure Go) or in
// PostgreSQL (OpenPostgres, NewPostgres), with versioned migrations recorded
// in the cloakroom_schema_migrations table under the component
// "directory:cloakroom_users", like the session stores.
//
// ExampleDirectory_AfterLogin wires a Directory into login and bearer;
// ExampleOpenSQLite and ExampleDirectory_Sync fill it from Keycloak. All
// run against keycloaktest.
//
// # Keeping rows current
//
// Three things write rows:
//
//   - Logins and API calls: UpsertFromClaims, through AfterLogin and
//     MapUser, which the application wires into login.Config.AfterLogin
//     and bearer.WithUserMapper with one line each (see the example of
//     AfterLogin; this package imports neither login nor bearer). A claim missing from a token leaves the
//     stored value alone; roles are replaced as a whole when the token
//     carries realm_access or resource_access. A request whose token
//     changes nothing does not write.
//   - Reads from Keycloak: RefreshFromKeycloak for one user, Sync for all
//     of them (a resumable, streaming reconciliation).
//   - Administrative actions that change Keycloak first and then the row:
//     PushToKeycloak, Deactivate, Delete, ResetPassword, EndSessions.
//
// # Identity and username reuse
//
// A row is found by its sub; usernames are display attributes and are not
// unique in the local table. When a username reappears under a new sub
// (the old Keycloak user was deleted or renamed and the name handed to
// someone else), the newcomer gets a new row with a new local id; the old
// row keeps its id and its data, including the old username, until a sync
// or refresh learns what happened to it (renamed: updated; deleted:
// deactivated). So Query.Username may match several rows: at most one of
// them is active.
//
// # Deactivation
//
// A row is deactivated (User.DeactivatedAt set, with a Reason) when its
// Keycloak user is gone (a sync or refresh found no such user), disabled
// in Keycloak, or was deactivated or deleted through this package. Rows are
// never deleted, so the application's own data can keep referring to the
// local id. A deactivated user is reactivated when Keycloak shows the user
// enabled again (sync, refresh) or when a token issued after the
// deactivation arrives (which proves Keycloak re-enabled the user). Tokens
// issued before the deactivation are refused: UpsertFromClaims returns
// ErrDeactivated, which AfterLogin and MapUser turn into a refusal wrapping
// cloakroom.ErrRejected (a refused login, or a 403), so
// disabling a user cuts access at once even while their tokens live on.
//
// # Sync
//
// Sync pages through every Keycloak user with admin.AllUsers (brief
// representation), writes rows in transactions of SyncOptions.BatchSize,
// and finally checks every active row the run did not see with one GetUser
// each (first/max paging has no snapshot, so a row missed because other
// users were created or deleted meanwhile is found again this way) and
// deactivates those Keycloak no longer has. Each batch commits together
// with a checkpoint (the run id, the next "first" offset and the counts so
// far) in the cloakroom_user_sync table, so an interrupted run continues
// with SyncOptions.Resume and reports the counts of the whole run.
//
// Keycloak may change while a run is interrupted, and offsets then point
// elsewhere, so a resumed run makes a new pass: it lists from the
// checkpoint's offset to the end, then the users before it again
// (comparing them with the rows the run wrote before the interruption,
// which are found unchanged when nothing changed), and then checks the
// active rows this pass did not see. A run killed at any moment (kill -9
// included: a batch and its checkpoint commit together or not at all) and
// resumed, any number of times, leaves the table as one uninterrupted run
// over Keycloak's users at the last resumption would, whatever users were
// added, deleted, renamed or disabled meanwhile; the one difference is
// that a user the run wrote and Keycloak then deleted keeps a row,
// deactivated (rows are never deleted). The test TestUsersSyncCrash of
// cmd/cloakroom checks this with 10,000 users.
//
// Memory does not grow with the number of users. Logins may update rows
// while a sync runs: a row written after the Keycloak page it would be
// compared with was fetched is left as it is (the newer write wins).
package directory
