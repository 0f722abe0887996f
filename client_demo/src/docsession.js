// One open document: a Y.Doc synced by the stock y-websocket provider, shown in a Tiptap
// editor with collaborators' named carets, and the "saved" state driven by the room
// channel's doc_saved events (docs/protocol.md).
//
// Reconnection is ours, not the provider's: y-websocket retries with a plain exponential
// backoff (no jitter), so a server restart would bring every client back at the same
// instants. On each close we cancel its retry (`shouldConnect = false`) and schedule our
// own with full jitter — or, after a 1013 whose reason carries `retry_after=N` (a node at
// its admission limit), N seconds × 1–1.3 (retry.js). We also follow the browser's
// online/offline events: offline, the sockets are closed at once (a dead network does not
// always close them) and edits keep piling up in the Y.Doc; online, we reconnect and sync
// step 1/2 merges both ways.

import * as Y from 'yjs'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import * as authProtocol from 'y-protocols/auth'
import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
import { jitteredDelay } from './dom.js'
import { retryAfterMs } from './retry.js'

const FINAL_CODES = [4400, 4401, 4403]

export class DocSession extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.wsBase  ws(s)://host
   * @param {string} o.room
   * @param {string} o.doc
   * @param {() => string} o.token
   * @param {{name: string, color: string, id: string}} o.user
   * @param {HTMLElement} o.element  where the editor goes
   * @param {boolean} o.editable
   * @param {string} o.label  accessible name of the editing area
   * @param {() => Promise<void>} [o.beforeReconnect]  awaited (bounded) before reconnecting
   */
  constructor ({ wsBase, room, doc, token, user, element, editable, label, beforeReconnect }) {
    super()
    this.room = room
    this.doc = doc
    this.user = user
    this.ydoc = new Y.Doc()
    this.attempt = 0
    this.retryTimer = null
    this.retryAt = 0
    this.final = null // {code, reason} once the server refused us for good
    this.savedClock = 0 // highest clock of ours the server said is stored
    this.beforeReconnect = beforeReconnect
    this.destroyed = false
    this.editableWanted = editable

    this.provider = new WebsocketProvider(`${wsBase}/yjs`, `${room}/${doc}`, this.ydoc, {
      connect: false,
      params: { token: token() },
      maxBackoffTime: 30000
    })
    this._token = token
    // The stock permission-denied handler console-logs provider.url — which carries the
    // token. Ours reports the reason only.
    this.provider.messageHandlers[messageAuth] = (_encoder, decoder, provider) => {
      authProtocol.readAuthMessage(decoder, provider.doc, (_ydoc, reason) => this._denied(reason))
    }
    this.provider.on('status', () => this._changed())
    this.provider.on('sync', () => {
      if (this.provider.synced) this.attempt = 0
      this._changed()
    })
    this.provider.on('connection-close', (event) => this._onClose(event))
    this.ydoc.on('update', (_update, origin) => {
      if (origin !== this.provider) {
        this.dispatchEvent(new CustomEvent('local-edit'))
        this._changed()
      }
    })

    this.editor = new Editor({
      element,
      editable,
      extensions: [
        StarterKit.configure({ undoRedo: false, link: { openOnClick: false } }),
        Collaboration.configure({ document: this.ydoc }),
        CollaborationCaret.configure({
          provider: this.provider,
          user: { name: user.name, color: user.color, id: user.id },
          render: (u) => {
            const caret = document.createElement('span')
            caret.className = 'caret'
            caret.style.borderColor = u.color
            caret.setAttribute('aria-hidden', 'true')
            const name = document.createElement('span')
            name.className = 'caret-label'
            name.style.backgroundColor = u.color
            name.textContent = u.name
            caret.dataset.user = u.id ?? ''
            caret.append(name)
            return caret
          }
        })
      ],
      editorProps: {
        attributes: {
          class: 'doc-text',
          role: 'textbox',
          'aria-multiline': 'true',
          'aria-label': label,
          'aria-readonly': String(!editable),
          spellcheck: 'true'
        }
      }
    })

    this._online = () => this._scheduleReconnect(true)
    this._offline = () => this._goOffline()
    window.addEventListener('online', this._online)
    window.addEventListener('offline', this._offline)
    if (navigator.onLine) this._connectNow()
    else this._changed()
  }

  // ------------------------------------------------------------------ state

  /** 'connecting' | 'online' | 'offline' | 'reconnecting' | 'closed' */
  get connection () {
    if (this.final) return 'closed'
    if (!navigator.onLine) return 'offline'
    if (this.provider.wsconnected && this.provider.synced) return 'online'
    if (this.retryTimer) return 'reconnecting'
    return 'connecting'
  }

  /** My clock in the local doc (Y.encodeStateVector), 0 when I never edited it. */
  localClock () {
    return Y.decodeStateVector(Y.encodeStateVector(this.ydoc)).get(this.ydoc.clientID) ?? 0
  }

  /** 'saved' | 'saving' | 'offline' (offline with unsaved edits) | 'offline-clean' */
  get saveState () {
    const covered = this.savedClock >= this.localClock()
    const online = this.connection === 'online'
    if (covered) return online ? 'saved' : 'offline-clean'
    return online ? 'saving' : 'offline'
  }

  /** A doc_saved event of the room channel (sv: Uint8Array). */
  onSaved (sv) {
    try {
      const clock = Y.decodeStateVector(sv instanceof Uint8Array ? sv : new Uint8Array(sv)).get(this.ydoc.clientID) ?? 0
      if (clock > this.savedClock) this.savedClock = clock
    } catch {}
    this._changed()
  }

  setEditable (editable) {
    this.editableWanted = editable
    if (this.editor.isEditable !== editable) this.editor.setEditable(editable)
    this.editor.view.dom.setAttribute('aria-readonly', String(!editable))
  }

  _changed () {
    if (!this.destroyed) this.dispatchEvent(new CustomEvent('change'))
  }

  _denied (reason) {
    // "permission denied: read-only" comes when we wrote to a doc we may only read (a lock
    // landed meanwhile): stop editing; anything else is followed by a 4403 close.
    this.dispatchEvent(new CustomEvent('denied', { detail: { reason: String(reason ?? '') } }))
  }

  // ------------------------------------------------------------------ connection

  _connectNow () {
    if (this.destroyed || this.final) return
    clearTimeout(this.retryTimer)
    this.retryTimer = null
    this.provider.params = { token: this._token() }
    this.provider.connect()
    this._changed()
  }

  _onClose (event) {
    // Cancel the provider's own (unjittered) retry; ours follows.
    this.provider.shouldConnect = false
    if (this.destroyed) return
    // 1008 is final when the room is full of docs (retrying cannot help); other 1008s
    // (flooding, too many sockets) are retried later.
    const roomFull = event?.code === 1008 && /limit of \d+ documents/.test(event.reason ?? '')
    if (event && (FINAL_CODES.includes(event.code) || roomFull)) {
      this.final = { code: event.code, reason: event.reason }
      this.dispatchEvent(new CustomEvent('closed', { detail: this.final }))
      this._changed()
      return
    }
    if (!navigator.onLine || this._pausedOffline) { this._changed(); return }
    // A node at its admission limit says when to come back (1013, retry_after=N).
    this._scheduleReconnect(false, retryAfterMs(event?.code, event?.reason))
  }

  _goOffline () {
    this._pausedOffline = true
    clearTimeout(this.retryTimer)
    this.retryTimer = null
    this.provider.disconnect()
    this._changed()
  }

  _scheduleReconnect (fromOnline, busyMs = null) {
    if (this.destroyed || this.final) return
    this._pausedOffline = false
    clearTimeout(this.retryTimer)
    const delay = busyMs != null
      ? busyMs // the server's retry_after, jittered
      : fromOnline
        ? jitteredDelay(0, { baseMs: 1000 }) // back online: everyone at once would stampede
        : jitteredDelay(this.attempt, { baseMs: 500, capMs: 30000 })
    this.retryAfterHonoured = (this.retryAfterHonoured ?? 0) + (busyMs != null ? 1 : 0)
    this.attempt++
    this.retries = (this.retries ?? 0) + 1 // never reset: diagnostics and tests
    this.lastDelay = delay
    this.retryAt = Date.now() + delay
    this.retryTimer = setTimeout(async () => {
      if (this.beforeReconnect) {
        await Promise.race([this.beforeReconnect(), new Promise((resolve) => setTimeout(resolve, 3000))])
      }
      if (this.destroyed || !navigator.onLine) return
      this._connectNow()
    }, delay)
    this._changed()
  }

  destroy () {
    this.destroyed = true
    clearTimeout(this.retryTimer)
    window.removeEventListener('online', this._online)
    window.removeEventListener('offline', this._offline)
    try { this.editor.destroy() } catch {}
    this.provider.destroy()
    this.ydoc.destroy()
  }
}
