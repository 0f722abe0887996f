#!/usr/bin/env node
// Stock @hocuspocus/provider clients (the one Tiptap's Collaboration extension uses)
// against Atelier's /collab endpoint, beside stock y-websocket clients on /yjs.
//
//   multiplex  one HocuspocusProviderWebsocket, three HocuspocusProviders on it (two group
//              docs, one class doc): one socket, each doc authenticated with its own scope
//   coedit     the Hocuspocus client and a y-websocket client type into the same doc and
//              converge; each sees the other's awareness (cursor/name)
//   acks       every write acknowledged (SyncStatus): no unsynced changes left
//   readonly   the class doc (read-only for a student): a write is not applied (the
//              teacher, on /yjs, never sees it), while the teacher's text reaches the student
//   refused    a fourth doc, in another group's room: PermissionDenied with a reason; the
//              socket and the other docs go on
//   lock       the teacher locks the group doc (REST, on the y-websocket side's node): the
//              provider is told scope "readonly" at once; unlocked, "read-write" again
//
// Config (JSON in env INTEROP_CONFIG): collabUrl (ws://…/collab), yjsUrl (ws://…/yjs),
// httpUrl (the REST base of the yjsUrl node),
// provider ("@hocuspocus/provider" or "hocuspocus-provider-v4"), doc (a fresh doc name
// prefix), tokens: {student, classmate, teacher} (s-01, s-02, t-martin), timeoutMs.
// Exit 0 + JSON report on stdout; exit 1 with the failing phase on stderr.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const cfg = JSON.parse(process.env.INTEROP_CONFIG || '{}')
const { HocuspocusProvider, HocuspocusProviderWebsocket } = await import(cfg.provider || '@hocuspocus/provider')
const timeoutMs = cfg.timeoutMs || 15000
const report = { provider: cfg.provider, phases: {} }
let phase = 'start'

function fail (why) {
  process.stderr.write(`hocus_story: phase ${phase}: ${why}\n${JSON.stringify(report)}\n`)
  process.exit(1)
}

async function waitUntil (what, condition) {
  const start = Date.now()
  while (!condition()) {
    if (Date.now() - start > timeoutMs) fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return Date.now() - start
}

// Counts the sockets the providers open: the point of multiplexing.
let socketsOpened = 0
class CountingWebSocket extends WebSocket {
  constructor (...args) { super(...args); socketsOpened += 1 }
}

function hocusDoc (socket, name, token) {
  const state = { name, scope: null, scopes: [], failed: null, synced: false, stateless: [] }
  const provider = new HocuspocusProvider({
    websocketProvider: socket,
    name,
    token,
    onAuthenticated: ({ scope }) => { state.scope = scope; state.scopes.push(scope) },
    onAuthenticationFailed: ({ reason }) => { state.failed = reason },
    onSynced: () => { state.synced = true },
    onStateless: ({ payload }) => { state.stateless.push(payload) }
  })
  provider.attach()
  state.provider = provider
  state.text = provider.document.getText('content')
  return state
}

function yjsDoc (room, doc, token) {
  const ydoc = new Y.Doc()
  const provider = new WebsocketProvider(cfg.yjsUrl, `${room}/${doc}`, ydoc, {
    WebSocketPolyfill: WebSocket, params: { token }, disableBc: true
  })
  return { ydoc, provider, text: ydoc.getText('content') }
}

// ------------------------------------------------------------------ multiplex
phase = 'multiplex'
const socket = new HocuspocusProviderWebsocket({ url: cfg.collabUrl, WebSocketPolyfill: CountingWebSocket })
const a = hocusDoc(socket, `2nde-a-g1/${cfg.doc}-a`, cfg.tokens.student)
const b = hocusDoc(socket, `2nde-a-g1/${cfg.doc}-b`, cfg.tokens.student)
const c = hocusDoc(socket, `2nde-a/${cfg.doc}-c`, cfg.tokens.student)
const syncedMs = await waitUntil('three docs synced', () => a.synced && b.synced && c.synced)
report.phases.multiplex = { socketsOpened, scopes: [a.scope, b.scope, c.scope], syncedMs }

// ------------------------------------------------------------------ coedit
phase = 'coedit'
const mate = yjsDoc('2nde-a-g1', `${cfg.doc}-a`, cfg.tokens.classmate)
await waitUntil('y-websocket synced', () => mate.provider.synced)
for (let i = 0; i < 10; i++) {
  a.text.insert(a.text.length, `<h${i}>`)
  mate.text.insert(0, `<y${i}>`)
  await new Promise((resolve) => setTimeout(resolve, 10))
}
b.text.insert(0, 'seulement dans b')
await waitUntil('convergence', () => a.text.toString() === mate.text.toString() && a.text.length === 80)
a.provider.awareness.setLocalStateField('user', { name: 'Léa', color: '#d33' })
mate.provider.awareness.setLocalStateField('user', { name: 'Hugo', color: '#33d' })
const names = (awareness) => [...awareness.getStates().values()].map((s) => s.user?.name).filter(Boolean).sort()
await waitUntil('awareness both ways', () =>
  names(a.provider.awareness).join() === 'Hugo,Léa' && names(mate.provider.awareness).join() === 'Hugo,Léa')
// Attribution: the server credits each one with their own text, whatever the protocol.
async function contributors () {
  const [room, doc] = a.name.split('/')
  const res = await fetch(`${cfg.httpUrl}/api/rooms/${room}/docs/${doc}/contributions`, {
    headers: { authorization: `Bearer ${cfg.tokens.teacher}` }
  })
  if (res.status !== 200) fail(`contributions: HTTP ${res.status}`)
  const body = await res.json()
  return Object.fromEntries(body.users.filter((u) => u.inserted > 0).map((u) => [u.id, u.inserted]))
}
let credited = {}
const start = Date.now() // the ledger folds once a second
while (Object.keys(credited).length < 2 && Date.now() - start < 10000) {
  credited = await contributors()
  if (Object.keys(credited).length < 2) await new Promise((resolve) => setTimeout(resolve, 300))
}
report.phases.coedit = { textLength: a.text.length, awareness: names(a.provider.awareness), credited }

// ------------------------------------------------------------------ acks
phase = 'acks'
await waitUntil('writes acknowledged', () => !a.provider.hasUnsyncedChanges && !b.provider.hasUnsyncedChanges)
report.phases.acks = { unsynced: [a.provider.unsyncedChanges, b.provider.unsyncedChanges] }

// ------------------------------------------------------------------ readonly
phase = 'readonly'
const teacher = yjsDoc('2nde-a', `${cfg.doc}-c`, cfg.tokens.teacher)
await waitUntil('teacher synced', () => teacher.provider.synced)
c.text.insert(0, 'écrit par un élève')
teacher.text.insert(0, 'consigne du professeur')
await waitUntil('teacher text reaches the student', () => c.text.toString().includes('consigne du professeur'))
await new Promise((resolve) => setTimeout(resolve, 500))
if (teacher.text.toString().includes('élève')) fail('a read-only write was applied')
report.phases.readonly = {
  teacherText: teacher.text.toString(),
  studentUnsynced: c.provider.unsyncedChanges
}

// ------------------------------------------------------------------ refused
phase = 'refused'
const other = hocusDoc(socket, `2nde-a-g2/${cfg.doc}-x`, cfg.tokens.student)
await waitUntil('permission denied', () => other.failed !== null)
a.text.insert(0, '!')
await waitUntil('the other docs go on', () => mate.text.toString().startsWith('!'))
report.phases.refused = { reason: other.failed, socketsOpened }

// ------------------------------------------------------------------ lock
phase = 'lock'
async function lock (locked) {
  const [room, doc] = a.name.split('/')
  const res = await fetch(`${cfg.httpUrl}/api/rooms/${room}/docs/${doc}/lock`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${cfg.tokens.teacher}`, 'content-type': 'application/json' },
    body: JSON.stringify({ locked })
  })
  if (res.status !== 200) fail(`lock ${locked}: HTTP ${res.status}`)
}
await lock(true)
await waitUntil('scope readonly', () => a.scope === 'readonly')
await lock(false)
await waitUntil('scope read-write', () => a.scope === 'read-write')
report.phases.lock = { scopes: a.scopes }

for (const d of [a, b, c, other]) d.provider.destroy()
socket.destroy()
mate.provider.destroy()
teacher.provider.destroy()
report.ok = true
process.stdout.write(JSON.stringify(report) + '\n')
process.exit(0)
