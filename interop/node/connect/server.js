// An Express API protected by keycloak-connect, Keycloak's Node.js adapter
// (marked deprecated upstream, "will be removed in the future", yet still
// the official one), in bearer-only mode: requests carry
// "Authorization: Bearer <access token>".
//
// Configuration comes from the environment:
//   KEYCLOAK_URL         auth-server-url, e.g. http://127.0.0.1:8080
//   KEYCLOAK_REALM       realm name
//   KEYCLOAK_CLIENT      resource: the client id tokens must name in aud
//   KEYCLOAK_PUBLIC_KEY  realm public key (base64 DER, as GET /realms/{realm}
//                        shows it); unset, keys come from the realm's certs
//   PORT                 port on 127.0.0.1 (default 0: any free port)
// It prints "listening on http://127.0.0.1:PORT" once it accepts requests.
'use strict'

const express = require('express')
const Keycloak = require('keycloak-connect')

const keycloak = new Keycloak({}, {
  realm: process.env.KEYCLOAK_REALM,
  'auth-server-url': process.env.KEYCLOAK_URL,
  resource: process.env.KEYCLOAK_CLIENT,
  'bearer-only': true,
  'verify-token-audience': true,
  'realm-public-key': process.env.KEYCLOAK_PUBLIC_KEY || undefined
})

const app = express()
app.use(keycloak.middleware())

// Any valid access token of the realm meant for this client.
app.get('/api/hello', keycloak.protect(), (req, res) => {
  res.json({ user: req.kauth.grant.access_token.content.preferred_username })
})

// The realm role "admin" on top of that.
app.get('/api/admin', keycloak.protect('realm:admin'), (req, res) => {
  res.json({ admin: req.kauth.grant.access_token.content.preferred_username })
})

const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', (err) => {
  if (err) throw err
  console.log(`listening on http://127.0.0.1:${server.address().port}`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
