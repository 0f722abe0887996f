// The room channel of Atelier — `/rooms/{room_id}/live` — as a small framework-free client.
//
// Spec: docs/protocol.md. Every frame, both ways, is one binary WebSocket message holding
// one msgpack map with a string field `t`.
//
//   const channel = new RoomChannel({ url: 'wss://atelier.example', room: '2nde-a-g1',
//                                     token: async () => fetchToken() })
//   channel.addEventListener('message', (e) => show(e.detail.message))
//   channel.addEventListener('presence', (e) => showWhoIsHere(e.detail.presence))
//   channel.connect()
//   await channel.post('Bonjour **tout le monde**')
//
// Design choices (documented, so the UI can rely on them):
//  - The channel is `open` once the server's `hello` has arrived (not merely when the
//    socket opened): a refusal (4401/4403) arrives as a close right after the upgrade.
//  - Requests (`post`, `edit`, `remove`, `mute`, `unmute`, `ping`) made while the channel
//    is not open are REJECTED at once with code `not_connected` — nothing is queued. A
//    queued post replayed after a reconnect could be stored twice (the protocol has no
//    idempotency key), so the UI keeps its draft and lets the user send again.
//    A request in flight when the socket drops is rejected with code `disconnected`: it
//    may or may not have been applied; the history of the next `hello` tells.
//  - `setPresence` is fire-and-forget: the wanted state is remembered, coalesced (at most
//    one frame every `presenceIntervalMs`), and sent again after each reconnect (a new
//    connection starts with a fresh meta).
//  - When an error carries `retry_after` (rate_limited, unavailable), further requests of
//    the same kind are rejected locally with the same code (and the remaining
//    `retryAfter`) until that time, and no reconnection happens before it either.
//  - Close codes 4400, 4401, 4403 (and a hello with an unknown protocol version) are
//    final: no reconnection, a `closed` event. On 4401 a `token` FUNCTION is called again
//    for one more attempt before giving up. Every other close (1001, 1006, 1012, 1013, …)
//    reconnects with jittered exponential backoff; the backoff resets once a connection
//    stayed open `stableMs` (10 s). A 1013 whose reason carries `retry_after=N` (a node
//    at its admission limit) waits N s × 1–1.3 instead (retry.js).

import { decode, encode } from '@msgpack/msgpack'
import { retryAfterMs } from './retry.js'

export { parseMessage, renderMessage } from './markdown.js'

/** The room-channel protocol version this client speaks (`hello.v`). */
export const PROTOCOL_VERSION = 1

/** Close codes after which the client does not reconnect (docs/protocol.md). */
export const FINAL_CLOSE_CODES = Object.freeze([4400, 4401, 4403])

/** Close code this client uses (and reports) when the server speaks another protocol version. */
export const CLOSE_UNSUPPORTED_VERSION = 4000

/**
 * @typedef {{id: string, name: string, role: string}} Person
 * @typedef {{id: number, seq: number, room: string, author: Person, text: string, at: number,
 *            edited_at: number|null, deleted: boolean, deleted_by: string|null,
 *            version: number}} Message
 * @typedef {{conn: string, doc: string|null, typing: boolean, online_at: number}} Meta
 * @typedef {{name: string, role: string, metas: Meta[]}} PresenceEntry
 * @typedef {'connecting'|'open'|'reconnecting'|'closed'} ChannelState
 * @typedef {{initialMs?: number, maxMs?: number, factor?: number,
 *            jitter?: 'full'|'none', stableMs?: number}} BackoffOptions
 */

/**
 * A request that failed: the server's `error` frame, or a local refusal.
 * `code` is stable (forbidden, muted, too_long, empty, rate_limited, not_found, bad_request,
 * unavailable — and locally: not_connected, disconnected, timeout, closed).
 */
export class LiveError extends Error {
  /**
   * @param {{code: string, key?: string, message?: {fr?: string, en?: string}|string,
   *          retryAfter?: number|null, ref?: string|null, local?: boolean}} info
   */
  constructor ({ code, key, message, retryAfter = null, ref = null, local = false }) {
    const text = typeof message === 'string' ? message : (message?.en ?? message?.fr ?? code)
    super(text)
    this.name = 'LiveError'
    /** @type {string} stable, for programs */
    this.code = code
    /** @type {string} names the message in the client's own translations */
    this.key = key ?? `error.${code}`
    /** @type {{fr?: string, en?: string}} both languages, when the server gave them */
    this.messages = typeof message === 'object' && message !== null ? message : {}
    /** @type {number|null} seconds to wait before trying again */
    this.retryAfter = retryAfter ?? null
    /** @type {string|null} */
    this.ref = ref
    /** @type {boolean} true when refused by this client without asking the server */
    this.local = local
  }
}

const DEFAULT_BACKOFF = Object.freeze({
  initialMs: 500, maxMs: 30000, factor: 2, jitter: 'full', stableMs: 10000
})

/**
 * One room's live channel: chat, presence and room events, with reconnection.
 *
 * Events (all `CustomEvent`s, payload in `event.detail`):
 *  - `state`    {state, previous, code?, reason?, delayMs?, attempt?}
 *  - `hello`    {hello, reconnect: boolean, changed: Message[], gap: boolean}
 *               after (re)connecting; `messages`/`ordered`/`presence` are already updated.
 *               `gap` is true when messages may be missing between what was held and the
 *               new history (fetch them over REST: GET /api/rooms/{room}/messages?before=).
 *  - `message`  {message, previous: Message|null, isNew: boolean} a live message, new or
 *               changed (messages of a hello's history are reported by `hello` instead)
 *  - `presence` {presence: Map<string, PresenceEntry>, frame} after every state/diff
 *  - `muted`    {user, muted, by, me: boolean}
 *  - `event`    the room event frame ({kind, doc, locked, by, …})
 *  - `error`    {error: LiveError|Error, frame?} an error frame nobody waits for, an
 *               undecodable frame, or an unsupported protocol version
 *  - `closed`   {code, reason} final: the channel will not reconnect
 */
export class RoomChannel extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url  WebSocket base, e.g. `ws://127.0.0.1:8000` (no path)
   * @param {string} options.room  room id, e.g. `2nde-a-g1`
   * @param {string | (() => string | Promise<string>)} options.token  a JWT, or a function
   *        called on every (re)connect that returns one
   * @param {typeof WebSocket} [options.WebSocketImpl]  default `globalThis.WebSocket`
   * @param {BackoffOptions} [options.backoff]
   * @param {number} [options.requestTimeoutMs=10000]  a request without answer is rejected
   *        with code `timeout`
   * @param {number} [options.connectTimeoutMs=15000]  a socket without `hello` by then is
   *        dropped and retried
   * @param {number} [options.presenceIntervalMs=150]  at most one presence frame per interval
   * @param {() => number} [options.random=Math.random]  jitter source (tests)
   */
  constructor ({
    url, room, token, WebSocketImpl = globalThis.WebSocket, backoff = {},
    requestTimeoutMs = 10000, connectTimeoutMs = 15000, presenceIntervalMs = 150,
    random = Math.random
  }) {
    super()
    if (typeof url !== 'string' || !url) throw new TypeError('RoomChannel: url is required')
    if (typeof room !== 'string' || !room) throw new TypeError('RoomChannel: room is required')
    if (typeof token !== 'string' && typeof token !== 'function') {
      throw new TypeError('RoomChannel: token is a string or a function returning one')
    }
    if (typeof WebSocketImpl !== 'function') {
      throw new TypeError('RoomChannel: no WebSocket implementation (pass WebSocketImpl)')
    }
    this.url = url.replace(/\/+$/, '')
    this.room = room
    /** @private */ this._token = token
    /** @private */ this._WebSocket = WebSocketImpl
    /** @type {Required<BackoffOptions>} */
    this.backoff = { ...DEFAULT_BACKOFF, ...backoff }
    /** @private */ this._requestTimeoutMs = requestTimeoutMs
    /** @private */ this._connectTimeoutMs = connectTimeoutMs
    /** @private */ this._presenceIntervalMs = presenceIntervalMs
    /** @private */ this._random = random

    /** @type {ChannelState} */
    this.state = 'closed'
    /** @type {object|null} the latest `hello` frame (without its history) */
    this.hello = null
    /** @type {boolean} am I muted in this room? */
    this.muted = false
    /** @type {Map<number, Message>} message id → latest version */
    this.messages = new Map()
    /** @type {Message[]} the held messages in `seq` order (same objects as `messages`) */
    this.ordered = []
    /** @type {number} highest seq held */
    this.lastSeq = 0
    /** @type {Map<string, PresenceEntry>} user id → {name, role, metas} */
    this.presence = new Map()
    /** Counters, for diagnostics and tests. */
    this.stats = { connects: 0, hellos: 0, reconnects: 0, presenceSent: 0, framesIn: 0, framesOut: 0 }

    /** @private @type {WebSocket|null} */ this._ws = null
    /** @private */ this._attempt = 0
    /** @private */ this._openedAt = 0
    /** @private */ this._retryTimer = null
    /** @private */ this._connectTimer = null
    /** @private */ this._authRetried = false
    /** @private */ this._stopped = true
    /** @private */ this._refs = 0
    /** @private @type {Map<string, {resolve: Function, reject: Function, timer: any, kind: string}>} */
    this._pending = new Map()
    /** @private @type {Map<string, {until: number, code: string}>} request kind → held until (epoch ms) */
    this._holdUntil = new Map()
    /** @private */ this._notBefore = 0
    /** @private */ this._presenceWanted = { doc: null, typing: false }
    /** @private */ this._presenceSent = null
    /** @private */ this._presenceTimer = null
    /** @private */ this._presenceLastAt = 0
  }

  /** The current socket (diagnostics and tests: e.g. `terminate()` it to simulate a drop). */
  get socket () { return this._ws }

  /** Users online (with at least one meta), as user id → number of connections. */
  online () {
    const out = {}
    for (const [user, entry] of this.presence) if (entry.metas.length) out[user] = entry.metas.length
    return out
  }

  /** User ids of whoever is typing now (any of their connections). */
  typing () {
    return [...this.presence].filter(([, e]) => e.metas.some((m) => m.typing)).map(([u]) => u)
  }

  // ------------------------------------------------------------------ lifecycle

  /** Start connecting (no-op when already connecting or open). */
  connect () {
    if (!this._stopped) return this
    this._stopped = false
    this._attempt = 0
    this._authRetried = false
    this._setState('connecting')
    this._open()
    return this
  }

  /** Close for good: no reconnection; pending requests are rejected with code `closed`. */
  close (code = 1000, reason = 'client closed') {
    if (this._stopped && this.state === 'closed') return
    this._finish(code, reason, true)
  }

  /** @private */
  async _open () {
    const generation = ++this.stats.connects
    let token
    try {
      token = typeof this._token === 'function' ? await this._token() : this._token
    } catch (error) {
      this._emit('error', { error })
      if (!this._stopped && generation === this.stats.connects) this._scheduleReconnect(1006, 'token unavailable')
      return
    }
    if (this._stopped || generation !== this.stats.connects) return
    const address = `${this.url}/rooms/${encodeURIComponent(this.room)}/live?token=${encodeURIComponent(token ?? '')}`
    let ws
    try {
      ws = new this._WebSocket(address)
    } catch (error) {
      this._emit('error', { error })
      this._scheduleReconnect(1006, 'socket could not be created')
      return
    }
    ws.binaryType = 'arraybuffer'
    this._ws = ws
    ws.onmessage = (e) => { if (this._ws === ws) this._onData(e.data) }
    ws.onclose = (e) => { if (this._ws === ws) this._onSocketClosed(e.code, e.reason) }
    ws.onerror = () => {} // a close follows; nothing to add
    this._connectTimer = setTimeout(() => {
      if (this._ws === ws && this.state !== 'open') this._drop(ws, 1006, 'no hello in time')
    }, this._connectTimeoutMs)
  }

  /** @private Forget a socket at once (a dead socket's close event may come much later). */
  _drop (ws, code, reason) {
    ws.onmessage = ws.onclose = ws.onerror = null
    try { ws.close() } catch {}
    if (this._ws === ws) this._onSocketClosed(code, reason)
  }

  /** @private */
  _onSocketClosed (code, reason = '') {
    const ws = this._ws
    if (ws) ws.onmessage = ws.onclose = ws.onerror = null
    this._ws = null
    clearTimeout(this._connectTimer)
    clearTimeout(this._presenceTimer)
    this._presenceTimer = null
    this._presenceSent = null
    const wasOpen = this.state === 'open'
    this._rejectPending('disconnected', 'the connection was lost before an answer came')
    if (this._stopped) return
    if (this._openedAt && Date.now() - this._openedAt >= this.backoff.stableMs) this._attempt = 0
    this._openedAt = 0
    if (code === 4401 && typeof this._token === 'function' && !this._authRetried) {
      this._authRetried = true // a fresh token may help, once
      this._scheduleReconnect(code, reason)
      return
    }
    if (FINAL_CLOSE_CODES.includes(code) || code === CLOSE_UNSUPPORTED_VERSION) {
      this._finish(code, reason, false)
      return
    }
    if (wasOpen) this.stats.reconnects++
    // A node at its admission limit says when to come back (1013, retry_after=N).
    this._scheduleReconnect(code, reason, retryAfterMs(code, reason, this._random))
  }

  /** @private The delay of the next attempt: full jitter over a capped exponential. */
  _delay () {
    const { initialMs, maxMs, factor, jitter } = this.backoff
    const cap = Math.min(maxMs, initialMs * factor ** this._attempt)
    const base = jitter === 'none' ? cap : Math.floor(this._random() * cap)
    return Math.max(base, this._notBefore - Date.now())
  }

  /** @private */
  _scheduleReconnect (code, reason, busyMs = null) {
    const delayMs = busyMs == null
      ? this._delay()
      : Math.max(busyMs, this._notBefore - Date.now())
    const attempt = ++this._attempt
    this._setState('reconnecting', { code, reason, delayMs, attempt })
    clearTimeout(this._retryTimer)
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null
      if (!this._stopped) this._open()
    }, delayMs)
  }

  /** @private */
  _finish (code, reason, byClient) {
    this._stopped = true
    clearTimeout(this._retryTimer)
    clearTimeout(this._connectTimer)
    clearTimeout(this._presenceTimer)
    this._retryTimer = this._presenceTimer = null
    const ws = this._ws
    this._ws = null
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null
      try { ws.close(code >= 3000 || code === 1000 ? code : 1000, reason) } catch {}
    }
    this._rejectPending(byClient ? 'closed' : 'disconnected', 'the channel is closed')
    this._setState('closed', { code, reason })
    this._emit('closed', { code, reason })
  }

  /** @private */
  _setState (state, extra = {}) {
    const previous = this.state
    this.state = state
    this._emit('state', { state, previous, ...extra })
  }

  /** @private */
  _emit (type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }))
  }

  // ------------------------------------------------------------------ incoming frames

  /** @private */
  _onData (data) {
    let frame
    try {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data
      if (typeof bytes === 'string') throw new Error('text frame')
      frame = decode(bytes)
    } catch (error) {
      this._emit('error', { error: new Error(`undecodable frame: ${error.message}`) })
      return
    }
    if (frame === null || typeof frame !== 'object' || typeof frame.t !== 'string') return
    this.stats.framesIn++
    switch (frame.t) {
      case 'hello': return this._onHello(frame)
      case 'message': return this._onMessage(frame.message)
      case 'presence_state': return this._onPresenceState(frame)
      case 'presence_diff': return this._onPresenceDiff(frame)
      case 'muted': return this._onMuted(frame)
      case 'event':
        // A notification concerns the user, not the room: the bell listens on window.
        if (frame.kind === 'notification' && frame.item && typeof globalThis.dispatchEvent === 'function') globalThis.dispatchEvent(new CustomEvent('atelier:notification', { detail: frame.item }))
        return this._emit('event', frame)
      case 'ok': case 'pong': return this._settle(frame, null)
      case 'error': return this._onError(frame)
      default: // unknown frame types are ignored (forward compatibility)
    }
  }

  /** @private */
  _onHello (frame) {
    if (frame.v !== PROTOCOL_VERSION) {
      const error = new LiveError({
        code: 'unsupported_version',
        message: `the server speaks room-channel protocol v${frame.v}, this client v${PROTOCOL_VERSION}`,
        local: true
      })
      this._emit('error', { error, frame })
      this._finish(CLOSE_UNSUPPORTED_VERSION, 'unsupported protocol version', false)
      return
    }
    clearTimeout(this._connectTimer)
    const reconnect = this.stats.hellos > 0
    this.stats.hellos++
    const { history = [], ...rest } = frame
    this.hello = rest
    this.muted = Boolean(frame.muted)
    const heldHigh = this.lastSeq
    const changed = []
    for (const message of history) if (this._take(message)) changed.push(message)
    const firstSeq = history.length ? history[0].seq : (frame.last_seq ?? 0) + 1
    const gap = reconnect && heldHigh > 0 && firstSeq > heldHigh + 1
    this.presence = new Map()
    if (frame.presence) this._applyUsers(frame.presence.users, true)
    this._openedAt = Date.now()
    this._authRetried = false
    this._setState('open')
    this._emit('hello', { hello: this.hello, reconnect, changed, gap })
    this._emit('presence', { presence: this.presence, frame: null })
    this._presenceSent = { doc: null, typing: false } // a new connection's meta
    this._flushPresence()
  }

  /** @private Keep a message if new or of a higher version; true when something changed. */
  _take (message) {
    if (!message || typeof message.id !== 'number') return false
    const held = this.messages.get(message.id)
    if (held && !(message.version > held.version)) return false
    this.messages.set(message.id, message)
    if (held) {
      const i = this.ordered.indexOf(held)
      if (i >= 0) this.ordered[i] = message
    } else {
      let i = this.ordered.length // usually appended: search from the end
      while (i > 0 && this.ordered[i - 1].seq > message.seq) i--
      this.ordered.splice(i, 0, message)
      if (message.seq > this.lastSeq) this.lastSeq = message.seq
    }
    return true
  }

  /** @private */
  _onMessage (message) {
    const previous = this.messages.get(message?.id) ?? null
    if (this._take(message)) this._emit('message', { message, previous, isNew: previous === null })
  }

  /** @private */
  _applyUsers (users, join) {
    for (const [user, entry] of Object.entries(users ?? {})) {
      let mine = this.presence.get(user)
      if (!mine) {
        if (!join) continue
        mine = { name: entry.name, role: entry.role, metas: [] }
        this.presence.set(user, mine)
      }
      for (const meta of entry.metas ?? []) {
        mine.metas = mine.metas.filter((m) => m.conn !== meta.conn)
        if (join) mine.metas.push(meta)
      }
      if (join) { mine.name = entry.name; mine.role = entry.role }
      if (mine.metas.length === 0) this.presence.delete(user)
    }
  }

  /** @private */
  _onPresenceState (frame) {
    this.presence = new Map()
    this._applyUsers(frame.presence?.users, true)
    this._emit('presence', { presence: this.presence, frame })
  }

  /** @private */
  _onPresenceDiff (frame) {
    this._applyUsers(frame.leaves, false)
    this._applyUsers(frame.joins, true)
    this._emit('presence', { presence: this.presence, frame })
  }

  /** @private */
  _onMuted (frame) {
    const me = this.hello?.me?.id
    if (frame.user === me) this.muted = Boolean(frame.muted)
    this._emit('muted', { user: frame.user, muted: Boolean(frame.muted), by: frame.by, me: frame.user === me })
  }

  /** @private */
  _onError (frame) {
    const error = new LiveError({
      code: frame.code, key: frame.key, message: frame.message, retryAfter: frame.retry_after, ref: frame.ref
    })
    const pending = frame.ref != null ? this._pending.get(frame.ref) : undefined
    if (typeof frame.retry_after === 'number' && frame.retry_after > 0) {
      const until = Date.now() + frame.retry_after * 1000
      this._notBefore = Math.max(this._notBefore, until)
      if (pending) this._holdUntil.set(pending.kind, { until, code: frame.code })
    }
    if (pending) this._settle(frame, error)
    else this._emit('error', { error, frame })
  }

  /** @private */
  _settle (frame, error) {
    const pending = frame.ref != null ? this._pending.get(frame.ref) : undefined
    if (!pending) return
    this._pending.delete(frame.ref)
    clearTimeout(pending.timer)
    if (error) pending.reject(error)
    else pending.resolve(frame)
  }

  /** @private */
  _rejectPending (code, message) {
    const pending = [...this._pending.values()]
    this._pending.clear()
    for (const p of pending) {
      clearTimeout(p.timer)
      p.reject(new LiveError({ code, message, local: true }))
    }
  }

  // ------------------------------------------------------------------ requests

  /** @private */
  _send (frame) {
    this._ws.send(encode(frame))
    this.stats.framesOut++
  }

  /** @private Send a request frame with a fresh `ref`; settle on its ok/pong or error. */
  _request (frame) {
    const kind = frame.t
    const held = this._holdUntil.get(kind)
    if (held && held.until > Date.now()) {
      return Promise.reject(new LiveError({
        code: held.code, message: 'wait before trying again', retryAfter: (held.until - Date.now()) / 1000, local: true
      }))
    }
    if (this.state !== 'open' || !this._ws) {
      return Promise.reject(new LiveError({
        code: 'not_connected', message: `the channel is ${this.state}`, local: true
      }))
    }
    const ref = `r${++this._refs}`
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this._pending.delete(ref)) {
          reject(new LiveError({ code: 'timeout', message: 'no answer from the server', ref, local: true }))
        }
      }, this._requestTimeoutMs)
      this._pending.set(ref, { resolve, reject, timer, kind })
      try {
        this._send({ ...frame, ref })
      } catch (error) {
        this._pending.delete(ref)
        clearTimeout(timer)
        reject(new LiveError({ code: 'disconnected', message: String(error?.message ?? error), ref, local: true }))
      }
    })
  }

  /**
   * Post a chat message. Resolves with the `ok` frame (`{id, seq}`); everyone (this
   * channel too) also receives the `message`.
   * @param {string} text
   * @returns {Promise<{t: 'ok', ref: string, id: number, seq: number}>}
   */
  post (text) { return this._request({ t: 'post', text: String(text) }) }

  /**
   * Edit one of my messages.
   * @param {number} id
   * @param {string} text
   */
  edit (id, text) { return this._request({ t: 'edit', id, text: String(text) }) }

  /**
   * Delete a message (mine, or anyone's when I moderate the room). Named `remove`
   * because `delete` is the frame's name.
   * @param {number} id
   */
  remove (id) { return this._request({ t: 'delete', id }) }

  /** Mute a student in this room (moderators). @param {string} user */
  mute (user) { return this._request({ t: 'mute', user }) }

  /** Unmute a student in this room (moderators). @param {string} user */
  unmute (user) { return this._request({ t: 'unmute', user }) }

  /** Ask for a `pong`. Resolves with it. */
  ping () { return this._request({ t: 'ping' }) }

  /**
   * Say which doc I have open and whether I am typing. Fire-and-forget: changes are
   * merged into the wanted state and sent at most once per `presenceIntervalMs`, and
   * sent again after a reconnect. Fields left out keep their wanted value.
   * @param {{doc?: string|null, typing?: boolean}} change
   */
  setPresence (change = {}) {
    if ('doc' in change) this._presenceWanted.doc = change.doc ?? null
    if ('typing' in change) this._presenceWanted.typing = Boolean(change.typing)
    this._flushPresence()
  }

  /** @private */
  _flushPresence () {
    if (this.state !== 'open' || !this._ws || !this._presenceSent) return
    if (this.hello && this.hello.presence === undefined) return // no presence for me here
    const wanted = this._presenceWanted
    if (wanted.doc === this._presenceSent.doc && wanted.typing === this._presenceSent.typing) return
    if (this._presenceTimer) return // a send is already scheduled: it will take the latest
    const wait = this._presenceLastAt + this._presenceIntervalMs - Date.now()
    if (wait > 0) {
      this._presenceTimer = setTimeout(() => { this._presenceTimer = null; this._flushPresence() }, wait)
      return
    }
    const frame = { t: 'presence', doc: wanted.doc, typing: wanted.typing }
    try { this._send(frame) } catch { return }
    this._presenceSent = { doc: wanted.doc, typing: wanted.typing }
    this._presenceLastAt = Date.now()
    this.stats.presenceSent++
  }
}
