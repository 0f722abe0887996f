#!/usr/bin/env node
// y-websocket load generator: real handshake, real Yjs edits, end-to-end latency.
//
// Usage:  node loadgen.mjs CONFIG        (CONFIG: a JSON string, or a path to a JSON file)
//         LOADGEN_CONFIG='{...}' node loadgen.mjs
// Prints ONE JSON object (the result) on stdout; progress goes to stderr.
//
// Config (defaults in DEFAULTS below):
//   urls          ["ws://127.0.0.1:8000", ...]  client i of a room connects to urls[i % n]
//   rooms         ["2nde-a-g1/bench-0", ...]    "room_id/doc_name" paths (a URL path under /yjs/)
//                 or a number N with roomPrefix: N rooms "<roomPrefix>-<k>"
//   clientsPerRoom, writersPerRoom (clients 0..W-1 of each room write), rate (updates/s per writer)
//   warmupMs, durationMs, drainMs, connectTimeoutMs, deadlineMs (hard wall-clock cap, whole run)
//   tokens        {room_id: token} or {room_id: [token per client (cycled)]}; token: default
//   processes     N generator worker processes (clients dealt round-robin); 1 is usually enough
//   connectConcurrency  handshakes in flight (total, split across processes)
//   pathPrefix    "/yjs" ; deflate: false (permessage-deflate offered or not)
//   hocusPath     with protocol "hocuspocus": the fixed socket path (Atelier's /collab);
//                 unset: pathPrefix/room as for y-websocket
//   protocol      "y-websocket" (default) or "hocuspocus": Hocuspocus multiplexes documents on
//                 one socket, so every frame starts with the document name (varString) and a
//                 client must send an Auth/Token message before its sync step 1; the server's
//                 replies to our step 1 come as SyncReply (4), acks as SyncStatus (8). The
//                 document name is the room path; the payloads are the same bytes.
//
// What a client does: opens ws, sends sync step 1, answers the server's step 1 with step 2,
// counts as synced when the server's step 2 arrives. It keeps a Y.Doc and applies every
// incoming update. A writer sets key <writerId> of Y.Map "bench" to [seq, sendEpochMs,
// writerId] every 1/rate s (open loop), so each update is a real Yjs item whose left
// origin is the writer's previous one. Yjs integrates a client's structs in clock order
// (later ones stay pending while an earlier one is missing), so a receiver that has seen
// seq k of a writer has integrated seq 1..k: missing = sent - last seq seen, summed over
// receivers. receiverMode "decode" (opt-in, ~half the generator CPU): non-writers keep no
// Y.Doc and read the values with Y.decodeUpdate; only a contiguous seq prefix counts.
// Latency = frame arrival time at the receiver - send time (both epoch ms, same machine),
// for updates sent inside the measurement window [warmup end, send end).

import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { performance, monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'

const DEFAULTS = {
  urls: ['ws://127.0.0.1:8000'],
  rooms: ['2nde-a-g1/bench'],
  clientsPerRoom: 30,
  writersPerRoom: 3,
  rate: 5,
  warmupMs: 3000,
  durationMs: 20000,
  drainMs: 3000,
  connectTimeoutMs: 30000,
  deadlineMs: 0, // 0: computed from the phases + 30 s
  tokens: {},
  token: '',
  processes: 1,
  connectConcurrency: 64,
  pathPrefix: '/yjs',
  deflate: false,
  receiverMode: 'apply', // 'apply': every client keeps a Y.Doc; 'decode': readers only decode
  protocol: 'y-websocket',
  label: ''
}

const now = () => performance.timeOrigin + performance.now()
const REMOTE = Symbol('remote')
const STEP2_EMPTY = Uint8Array.of(0, 1, 2, 0, 0) // sync, step 2, empty update
const log = (...a) => process.stderr.write(`[loadgen${process.env.LOADGEN_WORKER ? ' w' + process.env.LOADGEN_WORKER : ''}] ${a.join(' ')}\n`)

// ---------------------------------------------------------------- latency histogram
// Log buckets of 2 % from 0.01 ms: percentiles within 2 %, merging is adding arrays.
const H_BASE = 0.01
const H_LN = Math.log(1.02)
const H_SIZE = 900 // up to ~0.01 * 1.02^900 ≈ 5.5e5 ms
const hNew = () => ({ counts: new Array(H_SIZE).fill(0), n: 0, sum: 0, max: 0, min: Infinity })
function hAdd (h, ms) {
  let i = ms <= H_BASE ? 0 : Math.ceil(Math.log(ms / H_BASE) / H_LN)
  if (i >= H_SIZE) i = H_SIZE - 1
  h.counts[i]++; h.n++; h.sum += ms
  if (ms > h.max) h.max = ms
  if (ms < h.min) h.min = ms
}
function hMerge (a, b) {
  for (let i = 0; i < H_SIZE; i++) a.counts[i] += b.counts[i]
  a.n += b.n; a.sum += b.sum; a.max = Math.max(a.max, b.max); a.min = Math.min(a.min, b.min ?? Infinity)
  return a
}
function hPct (h, p) {
  if (h.n === 0) return null
  const target = Math.ceil(h.n * p / 100)
  let acc = 0
  for (let i = 0; i < H_SIZE; i++) {
    acc += h.counts[i]
    if (acc >= target) return Math.min(H_BASE * Math.pow(1.02, i), h.max)
  }
  return h.max
}
const r3 = (x) => x == null ? null : Math.round(x * 1000) / 1000
function hSummary (h) {
  return {
    n: h.n,
    mean: h.n ? r3(h.sum / h.n) : null,
    p50: r3(hPct(h, 50)),
    p95: r3(hPct(h, 95)),
    p99: r3(hPct(h, 99)),
    p999: r3(hPct(h, 99.9)),
    max: h.n ? r3(h.max) : null
  }
}
const bump = (obj, key, by = 1) => { obj[key] = (obj[key] || 0) + by }

// ---------------------------------------------------------------- config
function loadConfig () {
  let raw = process.argv[2] ?? process.env.LOADGEN_CONFIG
  if (!raw) { log('usage: node loadgen.mjs CONFIG_JSON_OR_FILE'); process.exit(64) }
  if (!raw.trimStart().startsWith('{')) raw = readFileSync(raw, 'utf8')
  const cfg = { ...DEFAULTS, ...JSON.parse(raw) }
  if (typeof cfg.rooms === 'number') {
    cfg.rooms = Array.from({ length: cfg.rooms }, (_, k) => `${cfg.roomPrefix || 'room'}-${k}`)
  }
  if (!cfg.deadlineMs) {
    cfg.deadlineMs = cfg.connectTimeoutMs + cfg.warmupMs + cfg.durationMs + cfg.drainMs + 30000
  }
  return cfg
}

function tokenFor (cfg, room, idx) {
  const roomId = room.split('/')[0]
  const t = cfg.tokens[room] ?? cfg.tokens[roomId] ?? cfg.token
  return Array.isArray(t) ? t[idx % t.length] : t
}

// ================================================================= worker
class Client {
  constructor (w, spec) {
    this.w = w
    this.spec = spec // {room, roomIdx, idx, url, token, wid}
    this.doc = new Y.Doc()
    this.map = this.doc.getMap('bench')
    this.ws = null
    this.synced = false
    this.tRecv = 0
    this.lastSeq = new Map() // writer id -> last seq seen
    this.writerK = new Map() // writer id -> its index in the room
    this.seq = 0
    this.next = 0
    this.interval = 0
    this.lite = w.cfg.receiverMode === 'decode' && !spec.wid
    this.hocus = w.cfg.protocol === 'hocuspocus'
    if (this.hocus) {
      const enc = encoding.createEncoder()
      encoding.writeVarString(enc, spec.room)
      this.prefix = encoding.toUint8Array(enc)
    }
    this.map.observe((ev) => this.onMapChange(ev))
    if (spec.wid) {
      this.doc.on('update', (update, origin) => {
        if (origin !== REMOTE && this.ws && this.ws.readyState === 1) {
          const enc = this.encoder(0)
          syncProtocol.writeUpdate(enc, update)
          this.ws.send(encoding.toUint8Array(enc))
          this.w.sent++
        }
      })
    }
  }

  /** an encoder holding the frame header: [document name (hocuspocus)] message type */
  encoder (type) {
    const enc = encoding.createEncoder()
    if (this.hocus) encoding.writeUint8Array(enc, this.prefix)
    encoding.writeVarUint(enc, type)
    return enc
  }

  connect () {
    const { url, room, token } = this.spec
    const w = this.w
    return new Promise((resolve) => {
      const t0 = now()
      let done = false
      const finish = (ok) => { if (!done) { done = true; clearTimeout(timer); resolve(ok) } }
      const timer = setTimeout(() => { bump(w.errors, 'handshake timeout'); finish(false) }, w.cfg.connectTimeoutMs)
      const q = token && !this.hocus ? `?token=${encodeURIComponent(token)}` : ''
      const ws = new WebSocket(w.cfg.hocusPath ? `${url}${w.cfg.hocusPath}` : `${url}${w.cfg.pathPrefix}/${room}${q}`, { perMessageDeflate: !!w.cfg.deflate, maxPayload: 64 * 1024 * 1024 })
      this.ws = ws
      ws.on('open', () => {
        if (this.hocus) {
          const auth = this.encoder(2) // Auth
          encoding.writeVarUint(auth, 0) // Token
          encoding.writeVarString(auth, token || '')
          ws.send(encoding.toUint8Array(auth))
        }
        const enc = this.encoder(0)
        syncProtocol.writeSyncStep1(enc, this.doc)
        ws.send(encoding.toUint8Array(enc))
      })
      ws.on('message', (data) => {
        const t = now()
        this.tRecv = t
        const inWindow = t >= w.warmupEnd && t < w.sendEnd
        if (inWindow) { w.framesIn++; w.bytesIn += data.length }
        w.framesTotal++
        const dec = decoding.createDecoder(data)
        if (this.hocus) decoding.readVarString(dec)
        let type = decoding.readVarUint(dec)
        if (this.hocus) {
          if (type === 4) type = 0 // SyncReply: a sync message
          else if (type === 8) return // SyncStatus: ack of our update
          else if (type === 2) {
            if (decoding.readVarUint(dec) === 1) bump(w.errors, 'auth: permission denied') // 2 = Authenticated
            return
          }
        }
        if (type === 0 && this.lite) {
          // decode-only receiver: no Y.Doc, reads the [seq, t] values straight off the update
          let st
          try {
            st = decoding.readVarUint(dec)
            if (st === 0) ws.send(this.hocus ? this.emptyStep2() : STEP2_EMPTY)
            else this.decodeUpdate(decoding.readVarUint8Array(dec))
          } catch (e) {
            bump(w.errors, `decode: ${String(e.message).slice(0, 80)}`); return
          }
          if (st === 2 && inWindow) w.updateFramesIn++
          if (st === 1 && !this.synced) {
            this.synced = true
            hAdd(w.handshake, now() - t0)
            finish(true)
          }
        } else if (type === 0) {
          const enc = this.encoder(this.hocus ? 4 : 0)
          const headerLen = encoding.length(enc)
          let st
          try {
            st = syncProtocol.readSyncMessage(dec, enc, this.doc, REMOTE)
          } catch (e) {
            bump(w.errors, `apply: ${String(e.message).slice(0, 80)}`); return
          }
          if (encoding.length(enc) > headerLen) ws.send(encoding.toUint8Array(enc))
          if (st === 2 && inWindow) w.updateFramesIn++
          if (st === 1 && !this.synced) {
            this.synced = true
            hAdd(w.handshake, now() - t0)
            finish(true)
          }
        } else if (type === 1) {
          if (inWindow) w.awarenessIn++
        } else if (type === 2) {
          let reason = ''
          try { decoding.readVarUint(dec); reason = decoding.readVarString(dec) } catch {}
          bump(w.errors, `auth: ${reason.slice(0, 80)}`)
        } else {
          bump(w.errors, `unknown message type ${type}`)
        }
      })
      ws.on('error', (e) => { bump(w.errors, `ws error: ${String(e.message).slice(0, 80)}`); finish(false) })
      ws.on('close', (code, reason) => {
        bump(w.closes, String(code))
        if (!w.stopping) {
          w.unexpectedCloses++
          if (w.unexpectedCloses <= 5) log(`close ${code} ${reason} on ${room} client ${this.spec.idx}`)
        }
        finish(false)
      })
    })
  }

  emptyStep2 () {
    const enc = this.encoder(4)
    encoding.writeVarUint(enc, 1)
    encoding.writeVarUint8Array(enc, Uint8Array.of(0, 0))
    return encoding.toUint8Array(enc)
  }

  onMapChange (ev) {
    for (const key of ev.keysChanged) {
      if (key === this.spec.wid) continue
      this.seen(key, this.map.get(key), false)
    }
  }

  decodeUpdate (update) {
    // only the first item of a key carries its key (parentSub) on the wire, so the value
    // names its writer: [seq, t, writerId]
    for (const s of Y.decodeUpdate(update).structs) {
      const arr = s.content && s.content.arr
      if (!arr) continue
      const v = arr[arr.length - 1]
      if (Array.isArray(v) && v.length === 3 && v[2] !== this.spec.wid) this.seen(v[2], v, true)
    }
  }

  seen (key, v, strict) {
    const w = this.w
    if (!Array.isArray(v)) return
    const [seq, t] = v
    const last = this.lastSeq.get(key) || 0
    if (seq <= last) { w.stale++; return }
    // strict (no Y.Doc, so no pending structs): only a contiguous prefix counts as
    // delivered; a jump is a gap, left counted as missing
    if (strict && seq !== last + 1) { w.gaps++; return }
    this.lastSeq.set(key, seq)
    w.delivered += seq - last
    if (seq - last > 1) w.coalesced += seq - last - 1
    if (t >= w.warmupEnd && t < w.sendEnd) {
      const ms = this.tRecv - t
      hAdd(w.latency, ms)
      if (w.nUrls > 1) {
        // writer k of a room sits on urls[k % n], like every client: same node or not?
        let k = this.writerK.get(key)
        if (k === undefined) { k = Number(key.slice(key.indexOf('w') + 1)); this.writerK.set(key, k) }
        hAdd((k % w.nUrls) === (this.spec.idx % w.nUrls) ? w.latencyLocal : w.latencyCross, ms)
      }
    }
  }

  write () {
    this.seq++
    this.map.set(this.spec.wid, [this.seq, now(), this.spec.wid])
  }
}

async function runWorker () {
  const msg = await new Promise((resolve) => process.once('message', resolve))
  const { cfg, specs } = msg
  const w = {
    cfg,
    errors: {},
    closes: {},
    unexpectedCloses: 0,
    stopping: false,
    handshake: hNew(),
    latency: hNew(),
    latencyLocal: hNew(),
    latencyCross: hNew(),
    nUrls: cfg.urls.length,
    framesIn: 0,
    framesTotal: 0,
    bytesIn: 0,
    updateFramesIn: 0,
    awarenessIn: 0,
    delivered: 0,
    coalesced: 0,
    stale: 0,
    gaps: 0,
    sent: 0,
    warmupEnd: Infinity,
    sendEnd: Infinity
  }
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  const clients = specs.map((s) => new Client(w, s))
  const writers = clients.filter((c) => c.spec.wid)

  // connect, bounded concurrency
  const conc = Math.max(1, Math.ceil(cfg.connectConcurrency / cfg.processes))
  const connectStart = now()
  let nextIdx = 0
  let synced = 0
  let lastSynced = connectStart
  const cpu0 = process.cpuUsage()
  // two phases: the first client of every room, then (once every worker is done with
  // theirs) all the others. A room is created by one handshake, not by 30 racing ones:
  // pycrdt-websocket loses clients when many open a new room at once.
  const leaders = clients.filter((c) => c.spec.idx === 0)
  const rest = clients.filter((c) => c.spec.idx !== 0)
  const connectAll = async (list) => {
    nextIdx = 0
    await Promise.all(Array.from({ length: Math.min(conc, list.length) }, async () => {
      while (nextIdx < list.length) {
        const c = list[nextIdx++]
        if (await c.connect()) { synced++; lastSynced = now() }
      }
    }))
  }
  await connectAll(leaders)
  process.send({ type: 'leaders' })
  await new Promise((resolve) => process.once('message', resolve))
  await connectAll(rest)
  const cpuConnect = process.cpuUsage(cpu0)
  process.send({ type: 'ready', synced, connectStart, lastSynced })

  const { t0 } = await new Promise((resolve) => process.once('message', resolve))
  w.warmupEnd = t0 + cfg.warmupMs
  w.sendEnd = w.warmupEnd + cfg.durationMs
  const drainEnd = w.sendEnd + cfg.drainMs

  // open-loop schedule, writers evenly staggered over one interval
  const interval = cfg.rate > 0 ? 1000 / cfg.rate : Infinity
  writers.forEach((c, k) => { c.next = t0 + (interval === Infinity ? 0 : ((c.spec.writerGlobal + 0.5) / cfg.writersTotal) * interval) })
  let lateSends = 0
  let cpuWin0 = null
  let cpuWin = null
  const tick = () => {
    const t = now()
    if (t >= w.warmupEnd && cpuWin0 === null) { cpuWin0 = process.cpuUsage(); loopDelay.reset(); loopDelay.enable() }
    if (t >= w.sendEnd) {
      if (cpuWin === null && cpuWin0 !== null) { cpuWin = process.cpuUsage(cpuWin0); loopDelay.disable() }
      return
    }
    for (const c of writers) {
      let burst = 0
      while (c.next <= t && burst < 100) {
        if (t - c.next > 50) lateSends++
        if (c.ws.readyState === 1) c.write()
        c.next += interval
        burst++
      }
      if (burst === 100) c.next = t + interval // hopelessly behind: skip, don't flood
    }
  }
  let ticker = null
  if (writers.length && interval !== Infinity) {
    ticker = setInterval(tick, Math.max(1, Math.min(5, interval / 4)))
  } else {
    ticker = setInterval(tick, 50)
  }
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, drainEnd - now())))
  clearInterval(ticker)
  tick()
  if (cpuWin === null && cpuWin0 !== null) cpuWin = process.cpuUsage(cpuWin0)

  // per (room, writer): how many of our receivers, sum of the last seq they saw
  const seen = {}
  for (const c of clients) {
    if (!c.synced) continue // failed handshakes are reported under connect, not as missing
    for (const wid of c.spec.roomWriters) {
      if (wid === c.spec.wid) continue
      const e = (seen[wid] ??= { receivers: 0, sumLast: 0, minLast: Infinity })
      const last = c.lastSeq.get(wid) || 0
      e.receivers++
      e.sumLast += last
      e.minLast = Math.min(e.minLast, last)
    }
  }
  const sentBy = {}
  for (const c of writers) sentBy[c.spec.wid] = c.seq

  w.stopping = true
  await Promise.all(clients.map((c) => new Promise((resolve) => {
    if (!c.ws || c.ws.readyState === 3) return resolve()
    const t = setTimeout(() => { c.ws.terminate(); resolve() }, 2000)
    c.ws.once('close', () => { clearTimeout(t); resolve() })
    c.ws.close(1000, 'bench done')
  })))
  const cpuTotal = process.cpuUsage(cpu0)
  process.send({
    type: 'result',
    clients: clients.length,
    synced,
    connectStart,
    lastSynced,
    sentBy,
    seen,
    handshake: w.handshake,
    latency: w.latency,
    latencyLocal: w.latencyLocal,
    latencyCross: w.latencyCross,
    framesIn: w.framesIn,
    framesTotal: w.framesTotal,
    bytesIn: w.bytesIn,
    updateFramesIn: w.updateFramesIn,
    awarenessIn: w.awarenessIn,
    delivered: w.delivered,
    coalesced: w.coalesced,
    stale: w.stale,
    gaps: w.gaps,
    sent: w.sent,
    lateSends,
    errors: w.errors,
    closes: w.closes,
    unexpectedCloses: w.unexpectedCloses,
    cpuConnectMs: (cpuConnect.user + cpuConnect.system) / 1000,
    cpuWindowMs: cpuWin ? (cpuWin.user + cpuWin.system) / 1000 : null,
    cpuTotalMs: (cpuTotal.user + cpuTotal.system) / 1000,
    loopDelayP99Ms: loopDelay.count ? loopDelay.percentile(99) / 1e6 : null,
    loopDelayMaxMs: loopDelay.count ? loopDelay.max / 1e6 : null,
    rssMiB: Math.round(process.memoryUsage().rss / 1048576)
  })
  setTimeout(() => process.exit(0), 100)
}

// ================================================================= parent
async function runParent () {
  const cfg = loadConfig()
  const P = Math.max(1, cfg.processes | 0)
  cfg.processes = P
  const started = now()
  const cpu0 = process.cpuUsage()

  // client specs, dealt round-robin to workers (so one hot room spreads over all of them)
  const perWorker = Array.from({ length: P }, () => [])
  let g = 0
  let writerGlobal = 0
  const writersTotal = cfg.rooms.length * Math.min(cfg.writersPerRoom, cfg.clientsPerRoom)
  cfg.writersTotal = writersTotal
  cfg.rooms.forEach((room, roomIdx) => {
    const W = Math.min(cfg.writersPerRoom, cfg.clientsPerRoom)
    const roomWriters = Array.from({ length: W }, (_, k) => `r${roomIdx}w${k}`)
    for (let idx = 0; idx < cfg.clientsPerRoom; idx++) {
      perWorker[g++ % P].push({
        room,
        roomIdx,
        idx,
        url: cfg.urls[idx % cfg.urls.length],
        token: tokenFor(cfg, room, idx),
        wid: idx < W ? roomWriters[idx] : null,
        writerGlobal: idx < W ? writerGlobal++ : -1,
        roomWriters
      })
    }
  })
  const total = g

  const workers = perWorker.map((specs, k) => {
    const child = fork(fileURLToPath(import.meta.url), ['--worker'], {
      env: { ...process.env, LOADGEN_WORKER: String(k) },
      stdio: ['ignore', 2, 'inherit', 'ipc'],
      execArgv: (process.env.LOADGEN_WORKER_ARGS || '').split(' ').filter(Boolean)
    })
    child.send({ cfg, specs })
    return child
  })
  const partial = { phase: 'connect' }
  const hard = setTimeout(() => {
    log(`hard deadline ${cfg.deadlineMs} ms reached in phase ${partial.phase}: killing workers`)
    for (const c of workers) c.kill('SIGKILL')
    process.stdout.write(JSON.stringify({ ok: false, error: `deadline in phase ${partial.phase}`, config: summaryConfig(cfg, total) }) + '\n')
    process.exit(2)
  }, cfg.deadlineMs)
  const nextMsg = (child, type) => new Promise((resolve, reject) => {
    const onMsg = (m) => { if (m.type === type) { child.off('message', onMsg); child.off('exit', onExit); resolve(m) } }
    const onExit = (code) => reject(new Error(`worker exited with ${code} before '${type}'`))
    child.on('message', onMsg)
    child.once('exit', onExit)
  })

  log(`${total} clients in ${cfg.rooms.length} rooms over ${cfg.urls.length} url(s), ${P} process(es)`)
  await Promise.all(workers.map((c) => nextMsg(c, 'leaders')))
  for (const c of workers) c.send({ type: 'connect-rest' })
  const ready = await Promise.all(workers.map((c) => nextMsg(c, 'ready')))
  const synced = ready.reduce((a, r) => a + r.synced, 0)
  const connectStart = Math.min(...ready.map((r) => r.connectStart))
  const lastSynced = Math.max(...ready.map((r) => r.lastSynced))
  log(`${synced}/${total} synced in ${Math.round(lastSynced - connectStart)} ms`)

  partial.phase = 'run'
  const t0 = now() + 200
  const resultsP = Promise.all(workers.map((c) => nextMsg(c, 'result')))
  for (const c of workers) c.send({ type: 'start', t0 })
  const results = await resultsP
  clearTimeout(hard)

  // ------------------------------------------------------------ aggregate
  const latency = hNew()
  const latencyLocal = hNew()
  const latencyCross = hNew()
  const handshake = hNew()
  const errors = {}
  const closes = {}
  const sentBy = {}
  const seen = {}
  let framesIn = 0, framesTotal = 0, bytesIn = 0, updateFramesIn = 0, awarenessIn = 0
  let delivered = 0, coalesced = 0, stale = 0, gaps = 0, sent = 0, lateSends = 0, unexpectedCloses = 0
  let cpuWin = 0, cpuTot = 0, cpuConn = 0
  let loopP99 = 0, loopMax = 0, rss = 0
  for (const r of results) {
    hMerge(latency, r.latency); hMerge(latencyLocal, r.latencyLocal); hMerge(latencyCross, r.latencyCross); hMerge(handshake, r.handshake)
    for (const [k, v] of Object.entries(r.errors)) bump(errors, k, v)
    for (const [k, v] of Object.entries(r.closes)) bump(closes, k, v)
    Object.assign(sentBy, r.sentBy)
    for (const [wid, e] of Object.entries(r.seen)) {
      const s = (seen[wid] ??= { receivers: 0, sumLast: 0, minLast: Infinity })
      s.receivers += e.receivers; s.sumLast += e.sumLast; s.minLast = Math.min(s.minLast, e.minLast)
    }
    framesIn += r.framesIn; framesTotal += r.framesTotal; bytesIn += r.bytesIn
    updateFramesIn += r.updateFramesIn; awarenessIn += r.awarenessIn
    delivered += r.delivered; coalesced += r.coalesced; stale += r.stale; gaps += r.gaps; sent += r.sent
    lateSends += r.lateSends; unexpectedCloses += r.unexpectedCloses
    cpuWin += r.cpuWindowMs || 0; cpuTot += r.cpuTotalMs; cpuConn += r.cpuConnectMs
    loopP99 = Math.max(loopP99, r.loopDelayP99Ms || 0); loopMax = Math.max(loopMax, r.loopDelayMaxMs || 0)
    rss += r.rssMiB
  }
  let expected = 0
  let missing = 0
  let receiversWithGaps = 0
  for (const [wid, s] of Object.entries(seen)) {
    const n = sentBy[wid] ?? 0
    expected += n * s.receivers
    missing += n * s.receivers - s.sumLast
    if (s.minLast < n) receiversWithGaps++
  }
  const durS = cfg.durationMs / 1000
  const parentCpu = process.cpuUsage(cpu0)
  const connectMs = lastSynced - connectStart
  const out = {
    ok: synced === total && missing === 0 && unexpectedCloses === 0,
    label: cfg.label,
    config: summaryConfig(cfg, total),
    window: { warmupEnd: t0 + cfg.warmupMs, sendEnd: t0 + cfg.warmupMs + cfg.durationMs, t0 },
    connect: {
      clients: total,
      synced,
      ms: Math.round(connectMs),
      perSecond: connectMs > 0 ? Math.round(synced / (connectMs / 1000)) : null,
      handshakeMs: hSummary(handshake)
    },
    sent,
    offeredUpdatesPerSec: r3(writersTotal * cfg.rate),
    expectedDeliveries: expected,
    deliveredUpdates: delivered,
    missing,
    writerReceiverPairsWithGaps: receiversWithGaps,
    coalesced,
    staleChanges: stale,
    gaps,
    framesPerSec: Math.round(framesIn / durS),
    updateFramesPerSec: Math.round(updateFramesIn / durS),
    awarenessFramesPerSec: Math.round(awarenessIn / durS),
    bytesInPerSec: Math.round(bytesIn / durS),
    framesTotal,
    latencyMs: hSummary(latency),
    ...(cfg.urls.length > 1 ? { latencySameNodeMs: hSummary(latencyLocal), latencyCrossNodeMs: hSummary(latencyCross) } : {}),
    errors,
    closes,
    unexpectedCloses,
    lateSends,
    generator: {
      processes: P,
      cpuWindowMs: Math.round(cpuWin),
      cpuWindowPct: r3((cpuWin / cfg.durationMs) * 100), // % of one core, summed over workers
      cpuConnectMs: Math.round(cpuConn),
      cpuTotalMs: Math.round(cpuTot + (parentCpu.user + parentCpu.system) / 1000),
      loopDelayP99Ms: r3(loopP99),
      loopDelayMaxMs: r3(loopMax),
      rssMiB: rss
    },
    wallMs: Math.round(now() - started)
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  log(`p50 ${out.latencyMs.p50} p99 ${out.latencyMs.p99} max ${out.latencyMs.max} ms, ${out.framesPerSec} frames/s, missing ${missing}, gen cpu ${out.generator.cpuWindowPct}%`)
  process.exit(0)
}

function summaryConfig (cfg, total) {
  return {
    urls: cfg.urls,
    rooms: cfg.rooms.length,
    clientsPerRoom: cfg.clientsPerRoom,
    clients: total,
    writersPerRoom: cfg.writersPerRoom,
    rate: cfg.rate,
    warmupMs: cfg.warmupMs,
    durationMs: cfg.durationMs,
    drainMs: cfg.drainMs,
    processes: cfg.processes,
    receiverMode: cfg.receiverMode,
    protocol: cfg.protocol,
    deflate: !!cfg.deflate
  }
}

if (process.argv.includes('--worker')) {
  runWorker().catch((e) => { log(`worker crashed: ${e.stack}`); process.exit(1) })
} else {
  runParent().catch((e) => { log(`crashed: ${e.stack}`); process.stdout.write(JSON.stringify({ ok: false, error: String(e) }) + '\n'); process.exit(1) })
}
