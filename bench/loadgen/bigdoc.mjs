#!/usr/bin/env node
// Big document: one writer types N characters (one Yjs update per character, as an editor
// sends them) while an observer on the same doc reads what the server fans out; the
// writer keeps at most `window` edits ahead of the observer (the server is never flooded
// beyond what it ingests). Ingest rate = N / (last edit seen by the observer - first sent).
// Then newcomers (fresh Y.Doc, empty state vector) join: full-sync time = socket open to
// the server's sync step 2 applied (text length N checked).
//
// Usage: node bigdoc.mjs CONFIG_JSON   {url, room, token, edits: 50000, window: 500,
//   newcomers: 3, protocol, pathPrefix}. Prints {phase: "ingested", ...}, waits for a line
// on stdin (the driver reads the server's RSS), then prints the final result.
import { createInterface } from 'node:readline'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'

const cfg = { edits: 50000, window: 500, newcomers: 3, protocol: 'y-websocket', pathPrefix: '/yjs', token: '', ...JSON.parse(process.argv[2]) }
const hocus = cfg.protocol === 'hocuspocus'
const now = () => performance.now()
const REMOTE = Symbol('remote')
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

function enc (type) {
  const e = encoding.createEncoder()
  if (hocus) encoding.writeVarString(e, cfg.room)
  encoding.writeVarUint(e, type)
  return e
}

/** a real client; resolves {ws, doc, text, tOpen, tSynced} once the server's step 2 is applied */
function client (lite = false) {
  return new Promise((resolve, reject) => {
    const doc = new Y.Doc()
    const text = doc.getText('content')
    const q = cfg.token && !hocus ? `?token=${encodeURIComponent(cfg.token)}` : ''
    const ws = new WebSocket(cfg.hocusPath ? `${cfg.url}${cfg.hocusPath}` : `${cfg.url}${cfg.pathPrefix}/${cfg.room}${q}`, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 })
    let tOpen = 0
    let synced = false
    const timer = setTimeout(() => reject(new Error('sync timeout')), 120000)
    ws.on('open', () => {
      tOpen = now()
      if (hocus) { const a = enc(2); encoding.writeVarUint(a, 0); encoding.writeVarString(a, cfg.token); ws.send(encoding.toUint8Array(a)) }
      const e = enc(0); syncProtocol.writeSyncStep1(e, doc); ws.send(encoding.toUint8Array(e))
    })
    ws.on('message', (data) => {
      if (lite && synced) return // after the handshake a lite client keeps no doc
      const d = decoding.createDecoder(data)
      if (hocus) decoding.readVarString(d)
      let type = decoding.readVarUint(d)
      if (hocus && type === 4) type = 0
      if (type !== 0) return
      const e = enc(hocus ? 4 : 0)
      const head = encoding.length(e)
      const st = syncProtocol.readSyncMessage(d, e, doc, REMOTE)
      if (encoding.length(e) > head) ws.send(encoding.toUint8Array(e))
      if (st === 1 && !synced) {
        synced = true
        clearTimeout(timer)
        resolve({ ws, doc, text, tOpen, tSynced: now(), bytes: data.length })
      }
    })
    ws.on('error', (err) => reject(err))
  })
}

const out = { edits: cfg.edits }
// the N edits, made and encoded before the clock starts: the generator's Yjs cost is not
// in the ingest figure (the writer socket only sends bytes, the observer only reads the
// writer's clock off each update with Y.parseUpdateMeta)
const src = new Y.Doc()
const frames = []
src.on('update', (u) => { const e = enc(0); syncProtocol.writeUpdate(e, u); frames.push(encoding.toUint8Array(e)) })
const letters = 'abcdefghijklmnopqrstuvwxyz '
const srcText = src.getText('content')
for (let i = 0; i < cfg.edits; i++) srcText.insert(i, letters[i % 27])
const writerId = src.clientID
const writer = await client(true)
let seen = 0
let waiter = null
const observer = await client(true)
observer.ws.on('message', (data) => {
  const d = decoding.createDecoder(data)
  if (hocus) decoding.readVarString(d)
  let type = decoding.readVarUint(d)
  if (hocus && type === 4) type = 0
  if (type !== 0) return
  if (decoding.readVarUint(d) === 0) return
  const to = Y.parseUpdateMeta(decoding.readVarUint8Array(d)).to.get(writerId)
  if (to !== undefined && to > seen) { seen = to; if (waiter) waiter() }
})
const t0 = now()
for (let i = 0; i < frames.length; i++) {
  writer.ws.send(frames[i])
  if (i - seen >= cfg.window) await new Promise((resolve) => { waiter = () => { if (i - seen < cfg.window / 2) { waiter = null; resolve() } } })
}
await new Promise((resolve) => {
  if (seen >= cfg.edits) return resolve()
  waiter = () => { if (seen >= cfg.edits) { waiter = null; resolve() } }
  setTimeout(resolve, 60000)
})
const t1 = now()
out.ingestS = Math.round(t1 - t0) / 1000
out.observerSaw = seen
out.ingestPerSec = Math.round(seen / ((t1 - t0) / 1000))
process.stdout.write(JSON.stringify({ phase: 'ingested', ...out }) + '\n')
await lines.next()

const syncs = []
for (let k = 0; k < cfg.newcomers; k++) {
  const c = await client()
  syncs.push({ ms: Math.round((c.tSynced - c.tOpen) * 10) / 10, length: c.text.length, step2Bytes: c.bytes })
  c.ws.terminate()
}
out.newcomers = syncs
out.newcomerSyncMsMedian = syncs.map((s) => s.ms).sort((a, b) => a - b)[Math.floor(syncs.length / 2)]
out.newcomerComplete = syncs.every((s) => s.length === cfg.edits)
writer.ws.terminate(); observer.ws.terminate()
process.stdout.write(JSON.stringify({ phase: 'done', ...out }) + '\n')
process.exit(0)
