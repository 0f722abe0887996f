#!/usr/bin/env node
// Co-editing story played by STOCK Yjs clients (yjs + y-websocket's WebsocketProvider)
// against an Atelier server (or any y-websocket compatible server).
//
//   a. connect   six providers join the same room/doc and reach `synced`
//   b. coedit    each types 20 tokens at random places in Y.Text "content" + one Y.Map entry;
//                all six replicas converge (same state vector, same text, same map)
//   c. awareness each publishes {user: {name, color}}; everyone sees all six states
//   d. offline   one provider disconnects, edits offline while the others keep editing,
//                reconnects; everything converges with both sides' edits present
//   e. leave     one provider is destroyed (says goodbye), another one's socket is cut
//                (no goodbye): the others see both awareness states disappear quickly
//   f. lateJoiner a 7th client with an empty doc joins and receives the whole document
//   idle        (optional, --idle-ms) a client alone in its own doc keeps its connection:
//                the provider drops a socket on which nothing arrived for 30 s
//
// Configuration: JSON in env INTEROP_CONFIG and/or command-line flags (flags win):
//   --url ws://127.0.0.1:8000/yjs[,ws://…/yjs,…]   --room 2nde-a-g1   --doc rapport
//   --tokens t1,t2,t3,t4,t5,t6      (one per client; the late joiner reuses the first)
//   --inserts 20  --offline-inserts 5  --timeout-ms 20000  --idle-ms 0  --seed 42
// JSON keys: url, room, doc, tokens (array), inserts, offlineInserts, timeoutMs, idleMs, seed.
//
// Exit 0 and a JSON report on stdout when every check passed; exit 1 with the failing
// phase and a per-client diagnosis on stderr otherwise; exit 2 on bad configuration.
// Tokens are never printed.

import { parseArgs } from 'node:util'
import * as Y from 'yjs'
import { WebsocketProvider, messageAwareness } from 'y-websocket'
import * as decoding from 'lib0/decoding'
import WebSocket from 'ws'

// ---------------------------------------------------------------- configuration

function readConfig () {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      room: { type: 'string' },
      doc: { type: 'string' },
      tokens: { type: 'string' },
      inserts: { type: 'string' },
      'offline-inserts': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'idle-ms': { type: 'string' },
      seed: { type: 'string' }
    }
  })
  const fromEnv = process.env.INTEROP_CONFIG ? JSON.parse(process.env.INTEROP_CONFIG) : {}
  const pick = (flag, key, fallback) => values[flag] ?? fromEnv[key] ?? fallback
  const config = {
    url: pick('url', 'url'),
    room: pick('room', 'room'),
    doc: pick('doc', 'doc'),
    tokens: values.tokens ? values.tokens.split(',') : fromEnv.tokens,
    inserts: Number(pick('inserts', 'inserts', 20)),
    offlineInserts: Number(pick('offline-inserts', 'offlineInserts', 5)),
    timeoutMs: Number(pick('timeout-ms', 'timeoutMs', 20000)),
    idleMs: Number(pick('idle-ms', 'idleMs', 0)),
    seed: Number(pick('seed', 'seed', Date.now() % 100000))
  }
  const problems = []
  if (!config.url) problems.push('url is required (e.g. ws://127.0.0.1:8000/yjs)')
  if (!config.room) problems.push('room is required')
  if (!config.doc) problems.push('doc is required')
  if (!Array.isArray(config.tokens) || config.tokens.length !== 6) {
    problems.push('exactly six tokens are required (one per client)')
  }
  for (const key of ['inserts', 'offlineInserts', 'timeoutMs', 'idleMs', 'seed']) {
    if (!Number.isInteger(config[key]) || config[key] < 0) problems.push(`${key} must be an integer >= 0`)
  }
  if (config.inserts < 1 || config.inserts > 99 || config.offlineInserts > 99) {
    problems.push('inserts must be within 1..99 and offlineInserts within 0..99')
  }
  if (problems.length > 0) {
    process.stderr.write(`coedit: bad configuration:\n  ${problems.join('\n  ')}\n`)
    process.exit(2)
  }
  return config
}

// ---------------------------------------------------------------- small tools

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Seeded PRNG (mulberry32) so that a failing run can be replayed with --seed.
function makeRandom (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

class CheckFailed extends Error {}

// JSON with object keys sorted at every level: a JSON object's key order carries no meaning,
// and a Yrs-based server does not keep it (it holds them in hash maps).
function canonicalJson (value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort()
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`
  }
  return JSON.stringify(value)
}

// Every wait in this script goes through here: poll `condition` until it holds, or fail
// after `timeoutMs` with `what` (and, if given, `explain()` for the details).
async function waitUntil (what, condition, { timeoutMs, explain } = {}) {
  const deadline = Date.now() + timeoutMs
  while (true) {
    if (fatal) throw fatal
    if (condition()) return
    if (Date.now() > deadline) {
      const details = explain ? `\n    ${explain()}` : ''
      throw new CheckFailed(`timed out after ${timeoutMs} ms waiting until ${what}${details}`)
    }
    await sleep(20)
  }
}

function check (what, condition, explain) {
  if (!condition) throw new CheckFailed(`${what}${explain ? `\n    ${explain()}` : ''}`)
}

// A terminal refusal from the server (close 4400-4499) stops the stock provider for good:
// no wait can succeed after that, so it fails the run at once.
let fatal = null

// ---------------------------------------------------------------- one stock client

// Every inserted token has the same width, e.g. "<c3.b.07>": client, phase, index.
// Tokens are only ever inserted between two tokens, so the final text must be exactly
// a permutation of every token typed by anybody: nothing lost, nothing doubled.
const TOKEN_WIDTH = 9
const tokenOf = (client, phase, i) => `<${client}.${phase}.${String(i).padStart(2, '0')}>`

// An awareness message body: varUint8Array of [count, (clientID, clock, JSON state)*].
function readAwarenessEntries (decoder) {
  const update = decoding.createDecoder(decoding.readVarUint8Array(decoder))
  const entries = []
  for (let n = decoding.readVarUint(update); n > 0; n--) {
    const clientID = decoding.readVarUint(update)
    const clock = decoding.readVarUint(update)
    const alive = JSON.parse(decoding.readVarString(update)) !== null
    entries.push({ clientID, clock, alive })
  }
  return entries
}

const COLORS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6']

class Client {
  constructor (name, token, config) {
    this.name = name
    this.color = COLORS[(Number(name.slice(1)) - 1) % COLORS.length] ?? '#000000' // c1…c7
    this.doc = new Y.Doc()
    this.text = this.doc.getText('content')
    this.map = this.doc.getMap('meta')
    this.typed = [] // every token this client inserted
    this.connectionCloses = [] // close codes seen by the provider (null = closed locally)
    // `url` may list several servers (comma-separated): client cN goes to the Nth, round
    // robin, so that one story spans several Atelier nodes.
    const urls = config.url.split(',')
    this.url = urls[((Number(name.slice(1)) || 1) - 1) % urls.length]
    this.provider = new WebsocketProvider(this.url, `${config.room}/${config.docName}`, this.doc, {
      params: { token },
      WebSocketPolyfill: WebSocket,
      // Node 20 has a global BroadcastChannel: without this, providers of one process
      // would sync with each other directly and the test would not exercise the server.
      disableBc: true
    })
    // Keep a log of the awareness entries received from the server, then let the stock
    // handler apply them as usual.
    this.heard = [] // { clientID, clock, alive }
    const applyAwareness = this.provider.messageHandlers[messageAwareness]
    this.provider.messageHandlers[messageAwareness] = (encoder, decoder, ...rest) => {
      this.heard.push(...readAwarenessEntries(decoding.clone(decoder)))
      applyAwareness(encoder, decoder, ...rest)
    }
    this.provider.on('connection-close', (event) => {
      this.connectionCloses.push(event ? event.code : null)
    })
    this.provider.on('closed', ({ code, reason }) => {
      fatal ??= new CheckFailed(`${name}: the server refused the connection for good: close ${code} "${reason}"`)
    })
  }

  get clientID () { return this.doc.clientID }
  get synced () { return this.provider.synced }
  get connected () { return this.provider.wsconnected }

  // Insert one token at a random token boundary of the local text.
  typeToken (phase, i, random) {
    const content = this.text.toString()
    const boundaries = [0]
    for (let at = 0; at < content.length; at++) if (content[at] === '>') boundaries.push(at + 1)
    const token = tokenOf(this.name, phase, i)
    this.text.insert(boundaries[Math.floor(random() * boundaries.length)], token)
    this.typed.push(token)
  }

  async typeMany (phase, count, random) {
    for (let i = 1; i <= count; i++) {
      this.typeToken(phase, i, random)
      await sleep(Math.floor(random() * 12))
    }
  }

  sees (other) {
    const state = this.provider.awareness.getStates().get(other.clientID)
    return state?.user?.name === other.name && state?.user?.color === other.color
  }

  seesSomethingOf (other) {
    return this.provider.awareness.getStates().has(other.clientID)
  }

  fingerprint () {
    return {
      stateVector: Buffer.from(Y.encodeStateVector(this.doc)).toString('base64'),
      text: this.text.toString(),
      map: canonicalJson(this.map.toJSON())
    }
  }

  describe () {
    return `${this.name}: connected=${this.connected} synced=${this.synced} ` +
      `textLength=${this.text.length} mapEntries=${this.map.size} ` +
      `awarenessStates=${this.provider.awareness.getStates().size} ` +
      `closes=[${this.connectionCloses.map((code) => code ?? 'local').join(',')}]`
  }

  destroy () {
    this.provider.destroy()
    this.provider.awareness.destroy()
    this.doc.destroy()
  }
}

// ---------------------------------------------------------------- group checks

function converged (clients) {
  const [first, ...rest] = clients.map((c) => c.fingerprint())
  return rest.every((f) => f.stateVector === first.stateVector && f.text === first.text && f.map === first.map)
}

function explainDivergence (clients) {
  const [first, ...rest] = clients
  const lines = clients.map((c) => c.describe())
  for (const other of rest) {
    const differences = describeDifferences(first, other)
    if (differences) lines.push(`${first.name} vs ${other.name}: ${differences}`)
  }
  return lines.join('\n    ')
}

// What differs between two replicas: state vector entries, text, map.
function describeDifferences (a, b) {
  const svA = Y.decodeStateVector(Y.encodeStateVector(a.doc))
  const svB = Y.decodeStateVector(Y.encodeStateVector(b.doc))
  const clocks = [...new Set([...svA.keys(), ...svB.keys()])]
    .filter((id) => svA.get(id) !== svB.get(id))
    .map((id) => `client ${id}: ${svA.get(id) ?? '-'} vs ${svB.get(id) ?? '-'}`)
  const fa = a.fingerprint()
  const fb = b.fingerprint()
  const parts = []
  if (clocks.length > 0) parts.push(`state vectors differ (${clocks.join('; ')})`)
  if (fa.text !== fb.text) parts.push(`texts differ (${fa.text.length} vs ${fb.text.length} chars)`)
  if (fa.map !== fb.map) parts.push(`maps differ (${fa.map} vs ${fb.map})`)
  return parts.join(', ')
}

// The text must hold every typed token exactly once and nothing else.
function checkAllTokensPresent (client, expectedTokens) {
  const content = client.text.toString()
  const found = content.match(/<[^<>]+>/g) ?? []
  check(`${client.name}'s text is made only of whole tokens`, found.join('') === content,
    () => `text starts with ${JSON.stringify(content.slice(0, 80))}`)
  const missing = expectedTokens.filter((t) => !found.includes(t))
  check(`${client.name}'s text has every token typed by anybody`, missing.length === 0,
    () => `missing ${missing.length}: ${missing.slice(0, 10).join(' ')}`)
  check(`${client.name}'s text has each token exactly once`, found.length === expectedTokens.length,
    () => `found ${found.length} tokens, expected ${expectedTokens.length}`)
}

// ---------------------------------------------------------------- the story

async function main () {
  const config = readConfig()
  // Last-resort bound on the whole run, whatever happens inside.
  const hardLimitMs = 10 * config.timeoutMs + config.idleMs + 60000
  setTimeout(() => {
    process.stderr.write(`coedit: FAILED: the whole run exceeded ${hardLimitMs} ms\n`)
    process.exit(1)
  }, hardLimitMs).unref()
  const random = makeRandom(config.seed)
  const timeoutMs = config.timeoutMs
  const report = {
    ok: false,
    server: config.url,
    room: config.room,
    doc: config.doc,
    seed: config.seed,
    clients: 0,
    phases: {},
    final: {}
  }
  const started = Date.now()
  const allClients = []
  const newClient = (name, token, docName = config.doc) => {
    const client = new Client(name, token, { ...config, docName })
    allClients.push(client)
    report.clients = allClients.filter((c) => c.name !== 'idle').length
    return client
  }
  let phase = 'setup'
  const timed = async (name, body) => {
    phase = name
    const t0 = Date.now()
    const details = (await body()) ?? {}
    report.phases[name] = { ok: true, ms: Date.now() - t0, ...details }
  }

  try {
    // The idle watcher sits alone in its own doc during the whole story (only when asked).
    let idle = null
    let idleSince = 0
    if (config.idleMs > 0) {
      idle = newClient('idle', config.tokens[0], `${config.doc}-idle`)
      idle.provider.awareness.setLocalStateField('user', { name: 'idle', color: '#000000' })
    }

    // a. six stock providers join the same room/doc
    const clients = config.tokens.map((token, i) => newClient(`c${i + 1}`, token))
    await timed('connect', async () => {
      await waitUntil('all six providers are synced', () => clients.every((c) => c.synced),
        { timeoutMs, explain: () => explainDivergence(clients) })
      if (idle) {
        await waitUntil('the idle watcher is synced', () => idle.synced, { timeoutMs })
        idleSince = Date.now()
      }
    })

    // b. everybody types at once; the six replicas converge
    await timed('coedit', async () => {
      await Promise.all(clients.map(async (c) => {
        await c.typeMany('b', config.inserts, random)
        c.map.set(c.name, { inserts: config.inserts, color: c.color })
      }))
      await waitUntil('the six replicas converge', () => converged(clients),
        { timeoutMs, explain: () => explainDivergence(clients) })
      const expected = clients.flatMap((c) => c.typed)
      for (const c of clients) checkAllTokensPresent(c, expected)
      check('the map has one entry per client', clients.every((c) => c.map.size === 6),
        () => explainDivergence(clients))
      return { inserts: expected.length, textLength: clients[0].text.length }
    })

    // c. awareness: everybody sees everybody (itself included)
    await timed('awareness', async () => {
      for (const c of clients) c.provider.awareness.setLocalStateField('user', { name: c.name, color: c.color })
      await waitUntil('each client sees the six users in its awareness',
        () => clients.every((viewer) => clients.every((other) => viewer.sees(other))),
        { timeoutMs, explain: () => clients.map((c) => c.describe()).join('\n    ') })
      return { statesPerClient: clients[0].provider.awareness.getStates().size }
    })

    // d. one client goes offline, everybody keeps typing, it comes back
    await timed('offline', async () => {
      const traveller = clients[5]
      const others = clients.slice(0, 5)
      traveller.provider.disconnect()
      await waitUntil(`${traveller.name} is disconnected`, () => !traveller.connected, { timeoutMs })
      await Promise.all([
        traveller.typeMany('d', config.offlineInserts, random),
        ...others.map((c) => c.typeMany('d', config.offlineInserts, random))
      ])
      traveller.map.set(`${traveller.name}-offline`, true)
      // Let the online edits reach the server and the five online replicas first,
      // so that both sides really hold something the other lacks.
      await waitUntil('the five online replicas converge', () => converged(others),
        { timeoutMs, explain: () => explainDivergence(others) })
      const theirs = others.flatMap((c) => c.typed.filter((t) => t.includes('.d.')))
      check(`${traveller.name} received no edit while offline`,
        theirs.every((t) => !traveller.text.toString().includes(t)))

      const t0 = Date.now()
      const heardBefore = traveller.heard.length
      traveller.provider.connect()
      await waitUntil(`${traveller.name} is synced again`, () => traveller.synced,
        { timeoutMs, explain: () => traveller.describe() })
      await waitUntil('the six replicas converge after the reconnection', () => converged(clients),
        { timeoutMs, explain: () => explainDivergence(clients) })
      const expected = clients.flatMap((c) => c.typed)
      for (const c of clients) checkAllTokensPresent(c, expected)
      check('every replica has the offline map entry',
        clients.every((c) => c.map.get(`${traveller.name}-offline`) === true))
      // On connect the provider sends its own awareness state but never asks for the others':
      // the server must push the room's current states by itself, right away (the bound is
      // far below the 15 s at which the others would renew their states anyway).
      await waitUntil(`the server pushed the five others' awareness states to ${traveller.name} on connect`,
        () => others.every((o) => traveller.heard.slice(heardBefore).some(
          (entry) => entry.clientID === o.clientID && entry.alive)),
        {
          timeoutMs: Math.min(timeoutMs, 5000),
          explain: () => `heard since reconnect: ${JSON.stringify(traveller.heard.slice(heardBefore))}`
        })
      // Yet the stock client ignores them for up to ~18 s: states pushed under a clock it has
      // already seen are dropped (y-protocols), and disconnect() announced its own null state
      // under the clock it re-sends on connect. Re-publishing bumps the clocks, as an app
      // would do on reconnect; everybody must then see everybody through the server.
      for (const c of clients) c.provider.awareness.setLocalStateField('user', { name: c.name, color: c.color })
      await waitUntil('all six see each other again after re-publishing',
        () => clients.every((viewer) => clients.every((other) => viewer.sees(other))),
        { timeoutMs, explain: () => clients.map((c) => c.describe()).join('\n    ') })
      return {
        offlineInserts: config.offlineInserts,
        concurrentInserts: config.offlineInserts * others.length,
        reconnectToConvergedMs: Date.now() - t0
      }
    })

    // e. leaving: a polite goodbye (destroy) and a cut socket (no goodbye at all)
    const awarenessGoneMs = Math.min(timeoutMs, 10000) // well under y-protocols' 30 s expiry
    await timed('leave', async () => {
      const polite = clients[4]
      const cut = clients[3]
      const stayers = [clients[0], clients[1], clients[2], clients[5]]

      let t0 = Date.now()
      polite.destroy()
      await waitUntil(`the others see ${polite.name}'s awareness disappear after destroy()`,
        () => stayers.every((s) => !s.seesSomethingOf(polite)),
        { timeoutMs: awarenessGoneMs, explain: () => stayers.map((s) => s.describe()).join('\n    ') })
      const politeMs = Date.now() - t0

      // Cut the socket as a crashed tab would: the provider never sends its null state.
      t0 = Date.now()
      cut.provider.shouldConnect = false
      cut.provider.ws.terminate()
      await waitUntil(`the others see ${cut.name}'s awareness disappear after its socket was cut`,
        () => stayers.every((s) => !s.seesSomethingOf(cut)),
        { timeoutMs: awarenessGoneMs, explain: () => stayers.map((s) => s.describe()).join('\n    ') })
      const cutMs = Date.now() - t0
      cut.destroy()
      check('the remaining users still see each other',
        stayers.every((viewer) => stayers.every((other) => viewer.sees(other))),
        () => stayers.map((s) => s.describe()).join('\n    '))
      return { destroyedGoneMs: politeMs, socketCutGoneMs: cutMs }
    })

    // f. a late joiner with an empty doc gets the whole document at sync
    await timed('lateJoiner', async () => {
      const reference = clients[0]
      const late = newClient('c7', config.tokens[0])
      await waitUntil('the late joiner is synced', () => late.synced,
        { timeoutMs, explain: () => late.describe() })
      check("the late joiner has the whole text as soon as it is synced",
        late.text.toString() === reference.text.toString(),
        () => `late joiner has ${late.text.length} chars, others ${reference.text.length}`)
      check('the late joiner has the same state vector and map as the others',
        converged([late, reference]), () => explainDivergence([late, reference]))
      checkAllTokensPresent(late, clients.flatMap((c) => c.typed))
      return { textLength: late.text.length }
    })

    // idle: the watcher, alone in its doc, must not have lost its connection.
    if (idle) {
      await timed('idle', async () => {
        const remaining = config.idleMs - (Date.now() - idleSince)
        if (remaining > 0) await sleep(remaining)
        check(`a lone idle client keeps its connection for ${config.idleMs} ms ` +
          '(y-websocket drops a socket on which nothing arrived for 30 s: the server must ' +
          'echo the client\'s own awareness renewals, or send something else)',
        idle.connectionCloses.length === 0 && idle.connected,
        () => idle.describe())
        return { idleMs: config.idleMs, connectionCloses: idle.connectionCloses.length }
      })
    }

    const reference = clients[0]
    report.final = {
      textLength: reference.text.length,
      tokens: reference.text.length / TOKEN_WIDTH,
      mapEntries: reference.map.size,
      stateVectorBytes: Y.encodeStateVector(reference.doc).length
    }
    report.totalMs = Date.now() - started
    report.ok = true
  } catch (error) {
    const why = error instanceof CheckFailed ? error.message : (error.stack ?? String(error))
    process.stderr.write(`coedit: FAILED in phase "${phase}": ${why}\n`)
    process.stderr.write(`  clients:\n    ${allClients.map((c) => c.describe()).join('\n    ')}\n`)
    process.stderr.write(`  phases passed: ${Object.keys(report.phases).join(', ') || 'none'}\n`)
    process.exit(1)
  }
  for (const c of allClients) {
    try { c.destroy() } catch { /* already destroyed */ }
  }
  process.stdout.write(JSON.stringify(report, null, 2) + '\n')
  process.exit(0)
}

main()
