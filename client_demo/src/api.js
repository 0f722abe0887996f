// REST calls (Bearer token) and the session kept in sessionStorage (one per tab).

const KEY = 'atelier.session'

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
  clear () { sessionStorage.removeItem(KEY) },
  token () { return this.get()?.token ?? null }
}

/** ws://host or wss://host of the page's own origin. */
export function wsBase () {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`
}

export async function api (path, { method = 'GET', body, auth = true } = {}) {
  const headers = { Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const token = session.token()
  if (auth && token) headers.Authorization = `Bearer ${token}`
  let response
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  } catch (error) {
    throw new ApiError(0, 'network', String(error?.message ?? error))
  }
  let data = null
  try { data = await response.json() } catch {}
  if (!response.ok) throw new ApiError(response.status, data?.error, data?.message)
  return data
}

export const enc = encodeURIComponent
