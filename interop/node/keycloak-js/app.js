// A minimal single-page app using keycloak-js, Keycloak's browser adapter.
// The test server serves this directory, keycloak-js from node_modules at
// /keycloak-js/ and the adapter configuration at /keycloak.json.
//
// The query string picks the init options:
//   onLoad=login-required|check-sso  (default login-required)
//   iframe=1                         session status iframe on (default off)
//   interval=N                       iframe check every N seconds (default 5)
//   silent=1                         check-sso in a hidden iframe, not a redirect
// Everything else is keycloak-js's default: the standard flow (authorization
// code) with response_mode=fragment.
import Keycloak from '/keycloak-js/keycloak.js'

const params = new URLSearchParams(location.search)
const keycloak = new Keycloak('/keycloak.json')
window.keycloak = keycloak // the test drives the adapter from here

const options = {
  onLoad: params.get('onLoad') ?? 'login-required',
  pkceMethod: 'S256',
  checkLoginIframe: params.get('iframe') === '1',
  checkLoginIframeInterval: Number(params.get('interval') ?? 5)
}
if (params.get('silent') === '1') {
  options.silentCheckSsoRedirectUri = `${location.origin}/silent-check-sso.html`
}

function show (status) {
  document.getElementById('user').textContent = keycloak.tokenParsed?.preferred_username ?? ''
  document.getElementById('status').textContent = status
}

try {
  show(await keycloak.init(options) ? 'authenticated' : 'not authenticated')
} catch (err) {
  show('error: ' + (err?.message ?? err?.error ?? JSON.stringify(err)))
}
