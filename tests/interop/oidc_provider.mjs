// A real OpenID provider for the ENT sign-in tests: the npm `oidc-provider` (pinned in
// package.json) with its development interactions, which serve a login form accepting
// any login with any password. The login name becomes the account id, so logging in as
// `s-01` signs in as the roster's student s-01; `inconnu-99` is nobody in the roster.
//
// Started by tests/support/oidc.py. Configuration from the environment:
//   OIDC_PORT            port on 127.0.0.1 (the issuer is http://127.0.0.1:PORT)
//   OIDC_CLIENT_ID       the client registered for Atelier
//   OIDC_CLIENT_SECRET   its secret (unset: a public client, token auth "none")
//   OIDC_REDIRECT_URIS   comma list of its redirect URIs
//   OIDC_SUB_PREFIX      optional: `sub` = prefix + login (an opaque-ish sub), while
//                        `preferred_username` stays the login
// Prints one line `ready http://127.0.0.1:PORT` once it listens; stops on SIGTERM.

import { randomBytes } from 'node:crypto'
import Provider from 'oidc-provider'

const port = Number(process.env.OIDC_PORT)
const issuer = `http://127.0.0.1:${port}`
const clientId = process.env.OIDC_CLIENT_ID ?? 'atelier'
const secret = process.env.OIDC_CLIENT_SECRET || null
const redirectUris = (process.env.OIDC_REDIRECT_URIS ?? '').split(',').filter(Boolean)
const subPrefix = process.env.OIDC_SUB_PREFIX ?? ''

const client = {
  client_id: clientId,
  redirect_uris: redirectUris,
  response_types: ['code'],
  grant_types: ['authorization_code'],
  token_endpoint_auth_method: secret ? 'client_secret_basic' : 'none'
}
if (secret) client.client_secret = secret

const provider = new Provider(issuer, {
  clients: [client],
  pkce: { required: () => true }, // S256 is the only method oidc-provider 9 knows
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
  conformIdTokenClaims: false, // the profile claims in the ID token itself
  features: { devInteractions: { enabled: true } },
  async findAccount (ctx, id) {
    return {
      accountId: id,
      async claims () {
        const login = id.startsWith(subPrefix) ? id.slice(subPrefix.length) : id
        return { sub: id, name: `Compte ENT ${login}`, preferred_username: login }
      }
    }
  },
  // The ENT's own apps need no consent screen: grant the asked scopes at once.
  async loadExistingGrant (ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId)
    if (grantId) return ctx.oidc.provider.Grant.find(grantId)
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId })
    grant.addOIDCScope('openid profile')
    await grant.save()
    return grant
  }
})

// The login name is the account id, as the ENT would know it (optionally prefixed).
if (subPrefix) {
  const { interactionFinished } = provider
  provider.interactionFinished = function (req, res, result, options) {
    if (result?.login?.accountId) result.login.accountId = subPrefix + result.login.accountId
    return interactionFinished.call(this, req, res, result, options)
  }
}

provider.on('server_error', (ctx, error) => console.error('oidc-provider server_error', error))

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
