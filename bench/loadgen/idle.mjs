#!/usr/bin/env node
// Idle connections: open N sockets in stages, each doing the real handshake (y-websocket
// or Hocuspocus framing), then staying silent. After each stage one JSON line goes to
// stdout and the script waits for any line on stdin (the driver reads the server's RSS
// meanwhile), then opens the next stage's sockets on top of those already open.
//
// Usage: node idle.mjs CONFIG_JSON
//   {url, rooms: ["room/doc", ...], perRoom: 50, stages: [2000, 5000, 10000],
//    tokens: {room_id: [tok, ...]}, protocol: "y-websocket"|"hocuspocus", pathPrefix: "/yjs",
//    connectConcurrency: 100, connectTimeoutMs: 20000, docsPerUser: 1}
// With docsPerUser > 1 a stage counts users (each with that many docs open), not sockets.
import { createInterface } from 'node:readline'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

const cfg = { docsPerUser: 1, perRoom: 50, stages: [2000], tokens: {}, protocol: 'y-websocket', pathPrefix: '/yjs', connectConcurrency: 100, connectTimeoutMs: 20000, ...JSON.parse(process.argv[2]) }
const hocus = cfg.protocol === 'hocuspocus'
const now = () => performance.now()
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const errors = {}
const bump = (k) => { errors[k] = (errors[k] || 0) + 1 }
const sockets = []
let closedEarly = 0
let stopping = false

function frame (room, type, write) {
  const enc = encoding.createEncoder()
  if (hocus) encoding.writeVarString(enc, room)
  encoding.writeVarUint(enc, type)
  write(enc)
  return encoding.toUint8Array(enc)
}

// One user: `docsPerUser` docs (the room's doc, then "-d1", "-d2", … beside it). Over
// y-websocket each doc is a socket of its own; over Hocuspocus they share one socket.
function open (i) {
  const room = cfg.rooms[Math.floor(i / cfg.perRoom) % cfg.rooms.length]
  const roomId = room.split('/')[0]
  const toks = cfg.tokens[roomId] || ['']
  const token = Array.isArray(toks) ? toks[i % toks.length] : toks
  const docs = Array.from({ length: cfg.docsPerUser }, (_, d) => (d === 0 ? room : `${room}-d${d}`))
  if (hocus) return openSocket(docs, token)
  return Promise.all(docs.map((doc) => openSocket([doc], token))).then((oks) => oks.every(Boolean))
}

function openSocket (docs, token) {
  const room = docs[0]
  return new Promise((resolve) => {
    let done = false
    let synced = 0
    const finish = (ok) => { if (!done) { done = true; clearTimeout(timer); resolve(ok) } }
    const timer = setTimeout(() => { bump('handshake timeout'); finish(false) }, cfg.connectTimeoutMs)
    const q = token && !hocus ? `?token=${encodeURIComponent(token)}` : ''
    const ws = new WebSocket(cfg.hocusPath ? `${cfg.url}${cfg.hocusPath}` : `${cfg.url}${cfg.pathPrefix}/${room}${q}`, { perMessageDeflate: false })
    sockets.push(ws)
    ws.on('open', () => {
      for (const doc of docs) {
        if (hocus) ws.send(frame(doc, 2, (e) => { encoding.writeVarUint(e, 0); encoding.writeVarString(e, token || '') }))
        // sync step 1 with an empty state vector
        ws.send(frame(doc, 0, (e) => { encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, Uint8Array.of(0)) }))
      }
    })
    ws.on('message', (data) => {
      const dec = decoding.createDecoder(data)
      const doc = hocus ? decoding.readVarString(dec) : room
      let type = decoding.readVarUint(dec)
      if (hocus && type === 4) type = 0
      if (type !== 0) return
      const st = decoding.readVarUint(dec)
      if (st === 0) ws.send(frame(doc, hocus ? 4 : 0, (e) => { encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, Uint8Array.of(0, 0)) }))
      else if (st === 1 && ++synced === docs.length) finish(true)
    })
    ws.on('error', (e) => { bump(`ws error: ${String(e.message).slice(0, 60)}`); finish(false) })
    ws.on('close', (code) => { if (!stopping) { closedEarly++; bump(`close ${code}`) } finish(false) })
  })
}

let opened = 0
for (const target of cfg.stages) {
  const t0 = now()
  const from = opened
  let ok = 0
  // the first socket of each new room first, then the others (pycrdt-websocket loses
  // clients when many handshakes create the same room at once)
  const idx = Array.from({ length: target - from }, (_, k) => from + k)
  const order = [...idx.filter((i) => i % cfg.perRoom === 0), ...idx.filter((i) => i % cfg.perRoom !== 0)]
  const nLeaders = idx.filter((i) => i % cfg.perRoom === 0).length
  for (const [a, b] of [[0, nLeaders], [nLeaders, order.length]]) {
    let next = a
    await Promise.all(Array.from({ length: cfg.connectConcurrency }, async () => {
      while (next < b) { const i = order[next++]; if (await open(i)) ok++ }
    }))
  }
  opened = target
  const ms = now() - t0
  const alive = sockets.filter((s) => s.readyState === 1).length
  process.stdout.write(JSON.stringify({ stage: target, newSockets: target - from, synced: ok, alive, sockets: sockets.length, ms: Math.round(ms), perSecond: Math.round(ok / (ms / 1000)), errors: { ...errors }, closedEarly, genRssMiB: Math.round(process.memoryUsage().rss / 1048576) }) + '\n')
  const line = await lines.next()
  if (line.done || line.value.trim() === 'stop') break
}
stopping = true
for (const s of sockets) s.terminate()
process.exit(0)
