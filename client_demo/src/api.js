// REST calls (Bearer token) and the session kept in sessionStorage (one per tab).
//
// Two ways to hold a token:
// - demo / pasted token: the token itself is kept in sessionStorage, as it came;
// - ENT sign-in (OpenID Connect, docs/protocol.md "Sign-in"): the server keeps the
//   session behind an HttpOnly cookie; the page asks POST /auth/socket-token (with the
//   session's CSRF token from GET /auth/session) for short-lived tokens and renews each
//   one before it expires. sessionStorage then holds {token, me, ent: {csrf, expiresAt}}.

const KEY = 'atelier.session'
const CSRF_HEADER = 'X-Atelier-CSRF'
const RENEW_MARGIN_MS = 60000 // renew a minted token this long before it expires
const FRESH_ENOUGH_MS = 20000 // below this, a token is renewed before it is used

export class ApiError extends Error {
  constructor (status, code, message) {
    super(message || code || `HTTP ${status}`)
    this.status = status
    this.code = code
  }
}

export const session = {
  get () {
    try { return JSON.parse(sessionStorage.getItem(KEY) || 'null') } catch { return null }
  },
  set (value) { sessionStorage.setItem(KEY, JSON.stringify(value)) },
  clear () {
    sessionStorage.removeItem(KEY)
    clearTimeout(renewTimer)
  },
  token () { return this.get()?.token ?? null },
  /** Signed in through the ENT (the token is minted from the session cookie). */
  isEnt () { return Boolean(this.get()?.ent) }
}

/** ws://host or wss://host of the page's own origin. */
export function wsBase () {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`
}

async function request (path, { method = 'GET', body, headers: extra = {}, auth = true } = {}) {
  const headers = { Accept: 'application/json', ...extra }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const token = session.token()
  if (auth && token) headers.Authorization = `Bearer ${token}`
  let response
  try {
    response = await fetch(path, {
      method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body)
    })
  } catch (error) {
    throw new ApiError(0, 'network', String(error?.message ?? error))
  }
  let data = null
  try { data = await response.json() } catch {}
  if (!response.ok) throw new ApiError(response.status, data?.error, data?.message)
  return data
}

export async function api (path, options = {}) {
  const auth = options.auth ?? true
  if (auth && session.isEnt()) await ensureFreshToken()
  try {
    return await request(path, options)
  } catch (error) {
    // An ENT token refused (expired while the laptop slept): one new token, one retry.
    if (!(error instanceof ApiError) || error.status !== 401 || !auth || !session.isEnt()) throw error
    await mintToken()
    return request(path, options)
  }
}

// ---------------------------------------------------------------------------- ENT sign-in

let status = null // the last GET /auth/session: {oidc, demo, user, csrf?, ...}
let renewTimer = null
let minting = null

/** GET /auth/session (cached for the page's life unless `fresh`). */
export async function authStatus ({ fresh = false } = {}) {
  if (!status || fresh) {
    try {
      status = await request('/auth/session', { auth: false })
    } catch (error) {
      // A server without the /auth endpoints, or offline: no ENT sign-in offered.
      if (!(error instanceof ApiError) || error.status === 0) status = { oidc: false, demo: false, user: null }
      else throw error
    }
  }
  return status
}

/** A new token from the session cookie (POST /auth/socket-token), kept and renewed. */
export function mintToken () {
  minting ??= (async () => {
    try {
      let csrf = session.get()?.ent?.csrf
      let minted
      try {
        minted = await request('/auth/socket-token', { method: 'POST', auth: false, headers: { [CSRF_HEADER]: csrf ?? '' } })
      } catch (error) {
        // Another tab signed in again meanwhile: a new session, a new CSRF token.
        if (!(error instanceof ApiError) || error.status !== 403) throw error
        csrf = (await authStatus({ fresh: true })).csrf
        minted = await request('/auth/socket-token', { method: 'POST', auth: false, headers: { [CSRF_HEADER]: csrf ?? '' } })
      }
      const expiresAt = Date.now() + minted.expires_in * 1000
      session.set({ ...session.get(), token: minted.token, ent: { csrf, expiresAt } })
      scheduleRenewal(minted.expires_in * 1000)
      return minted.token
    } finally {
      minting = null
    }
  })()
  return minting
}

function scheduleRenewal (lifetimeMs) {
  clearTimeout(renewTimer)
  const delay = Math.max(lifetimeMs - RENEW_MARGIN_MS, lifetimeMs / 2)
  renewTimer = setTimeout(() => {
    mintToken().catch((error) => {
      if (error instanceof ApiError && error.status === 401) {
        window.dispatchEvent(new CustomEvent('atelier:session-ended'))
      } else {
        scheduleRenewal(Math.min(lifetimeMs, 2 * FRESH_ENOUGH_MS)) // offline: try again soon
      }
    })
  }, delay)
}

/** In ENT mode, make sure the kept token has some life left (timers sleep with laptops). */
export async function ensureFreshToken () {
  const ent = session.get()?.ent
  if (!ent) return
  if (!session.token() || !(ent.expiresAt - Date.now() > FRESH_ENOUGH_MS)) await mintToken()
}

/** The token to put in a socket URL: renewed first when it is about to expire. */
export async function freshToken () {
  try { await ensureFreshToken() } catch {}
  return session.token()
}

/**
 * At page load: a tab of a browser signed in through the ENT (the session cookie) gets
 * its own token; a tab whose ENT session is gone (signed out elsewhere) forgets it.
 * A demo or pasted token is left as it is.
 */
export async function adoptEntSession () {
  const current = session.get()
  if (current?.token && !current.ent) return
  let now
  try {
    now = await authStatus({ fresh: true })
  } catch {
    return
  }
  if (!now.user) {
    if (current?.ent) session.clear()
    return
  }
  const same = current?.ent && current.me?.id === now.user.id
  session.set({ ...(same ? current : {}), ent: { csrf: now.csrf, expiresAt: same ? current.ent.expiresAt : 0 } })
  try {
    await mintToken()
    if (!session.get()?.me) session.set({ ...session.get(), me: await api('/api/me') })
  } catch {
    session.clear()
  }
}

/** End the ENT session (POST /auth/logout); the caller clears the tab's session. */
export async function endEntSession () {
  const csrf = session.get()?.ent?.csrf
  clearTimeout(renewTimer)
  status = null
  try {
    await request('/auth/logout', { method: 'POST', auth: false, headers: { [CSRF_HEADER]: csrf ?? '' } })
  } catch {} // already ended (expired, or signed out in another tab)
}

/** Where "Se connecter avec l'ENT" goes: back to the screen asked for, afterwards. */
export function entLoginUrl () {
  const hash = location.hash && !location.hash.startsWith('#/signin') ? location.hash : ''
  return `/auth/login?next=${encodeURIComponent('/' + hash)}`
}

export const enc = encodeURIComponent

/**
 * Download a file the API serves (an export ZIP): fetched with the token, saved under
 * `filename` through a blob link. Resolves to the byte size; throws ApiError otherwise.
 */
export async function download (path, filename) {
  await ensureFreshToken()
  let response
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${session.token()}` }, credentials: 'same-origin' })
  } catch (error) {
    throw new ApiError(0, 'network', String(error?.message ?? error))
  }
  if (!response.ok) {
    const data = await response.json().catch(() => null)
    throw new ApiError(response.status, data?.error, data?.message)
  }
  const blob = await response.blob()
  const url = URL.createObjectURL(blob)
  const link = document.createElement('a')
  link.href = url
  link.download = filename
  document.body.append(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 60000)
  return blob.size
}
