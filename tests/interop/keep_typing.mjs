#!/usr/bin/env node
// Stock providers keep typing while the test takes a server away under them.
//
// N providers (yjs + y-websocket) join one doc through a URL (the load balancer), each
// types a token every `everyMs` for `typingMs`. Once all are synced and typing, the
// script prints the line `TYPING` on stdout: the test then kills a node. The providers
// reconnect by themselves (y-websocket's backoff) to whichever node the balancer picks,
// keep typing, and at the end every replica must hold every token typed by anyone, and a
// fresh provider must receive the same document. Last stdout line: the JSON report.
//
// Config (JSON in env INTEROP_CONFIG): url, room, doc, tokens (array, one per provider),
// typingMs (default 6000), everyMs (default 40), timeoutMs (default 30000).

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const config = { typingMs: 6000, everyMs: 40, timeoutMs: 30000, ...JSON.parse(process.env.INTEROP_CONFIG) }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const hardStop = setTimeout(() => { fail('hard time limit reached') }, config.typingMs + 3 * config.timeoutMs)

function fail (why, details = {}) {
  process.stderr.write(`keep_typing: ${why}\n${JSON.stringify(details, null, 1)}\n`)
  process.exit(1)
}

async function waitUntil (what, condition) {
  const deadline = Date.now() + config.timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) fail(`timed out: ${what}`, describe())
    await sleep(50)
  }
}

const providers = []
function join (name, token) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(config.url, `${config.room}/${config.doc}`, doc, {
    params: { token },
    WebSocketPolyfill: WebSocket,
    disableBc: true // Node 20 has BroadcastChannel: keep the server in the loop
  })
  const entry = { name, doc, text: doc.getText('content'), provider, typed: [], closes: [] }
  provider.on('connection-close', (event) => entry.closes.push(event?.code ?? null))
  providers.push(entry)
  return entry
}

function describe () {
  return providers.map((p) => ({
    name: p.name,
    synced: p.provider.synced,
    length: p.text.length,
    typed: p.typed.length,
    missing: p.typed.filter((t) => !providers.every((q) => q.text.toString().includes(t))).length,
    closes: p.closes
  }))
}

const writers = config.tokens.map((token, i) => join(`w${i + 1}`, token))
await waitUntil('all providers synced', () => writers.every((w) => w.provider.synced))

let typing = true
const loops = writers.map(async (w) => {
  let i = 0
  while (typing) {
    const token = `<${w.name}.${String(i++).padStart(4, '0')}>`
    w.text.insert(w.text.length, token) // typed even while disconnected: kept locally
    w.typed.push(token)
    await sleep(config.everyMs)
  }
})
await sleep(300)
process.stdout.write('TYPING\n')
await sleep(config.typingMs)
typing = false
await Promise.all(loops)

const everyToken = writers.flatMap((w) => w.typed)
await waitUntil('every provider is synced again', () => writers.every((w) => w.provider.synced))
await waitUntil('every replica holds every token', () =>
  writers.every((w) => everyToken.every((t) => w.text.toString().includes(t))))
await waitUntil('replicas are identical', () =>
  writers.every((w) => w.text.toString() === writers[0].text.toString()))

const late = join('late', config.tokens[0])
await waitUntil('a late provider receives the whole document', () =>
  late.provider.synced && late.text.toString() === writers[0].text.toString())

const report = {
  ok: true,
  providers: writers.length,
  tokens: everyToken.length,
  textLength: writers[0].text.length,
  reconnects: writers.map((w) => w.closes.length),
  closeCodes: [...new Set(writers.flatMap((w) => w.closes))]
}
for (const p of providers) p.provider.destroy()
clearTimeout(hardStop)
process.stdout.write(JSON.stringify(report) + '\n')
process.exit(0)
