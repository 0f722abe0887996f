#!/usr/bin/env node
// Connection storms: open many sockets at once (each doing the real handshake, y-websocket
// or Hocuspocus framing) and measure how fast they all get synced, honouring the server's
// retry signal. Two modes:
//
// - "storm": open `total` sockets with `concurrency` handshakes in flight, then print one
//   JSON result line and exit.
// - "failover": the same, then print one JSON line ({phase: "synced", ...}) and keep the
//   sockets open. A socket that drops (its node was killed) reconnects like a browser: a
//   first wait of 0..initialJitterMs, then the retry rules below. After any line on stdin
//   (the driver killed a node), wait until every dropped socket is synced again (or gave
//   up) and no socket dropped for `quietMs`, then print the result line and exit.
//
// Retry rules (per socket, at most `maxTries` attempts, none started after the deadline):
// - close 1013 whose reason carries `retry_after=<seconds>`, or HTTP 503 refusing the
//   upgrade with a `Retry-After` header: wait that long plus 0..20 % jitter;
// - any other failure (refused, reset, timeout, close before synced, other status): wait
//   a jittered exponential backoff, d = min(cap, base·2^(try-1)), uniform in [d/2, d].
// A "connection in flight" is a handshake under way: a socket waiting out its backoff
// holds no slot.
//
// Usage: node storm.mjs CONFIG_JSON
//   {url, rooms: ["room/doc", ...], perRoom: 20, tokens: {room_id: [tok, ...]},
//    protocol: "y-websocket"|"hocuspocus", pathPrefix: "/yjs", hocusPath: undefined,
//    mode: "storm"|"failover", concurrency: 1000, processes: 2, attemptTimeoutMs: 15000,
//    maxTries: 5, backoffBaseMs: 250, backoffCapMs: 5000, initialJitterMs: 1000,
//    quietMs: 2000, leadersFirst: false, deadlineMs: 60000}
// Socket i goes to room i % rooms.length (so the first sockets open one per room) and uses
// that room's token i // rooms.length (cycling). leadersFirst: the first socket of every
// room synced before the others start (pycrdt-websocket loses handshakes when many
// create one room at once). Times are epoch milliseconds (performance.timeOrigin + now).
import { fork } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

const DEFAULTS = {
  perRoom: 20,
  tokens: {},
  protocol: 'y-websocket',
  pathPrefix: '/yjs',
  mode: 'storm',
  concurrency: 1000,
  processes: 2,
  attemptTimeoutMs: 15000,
  maxTries: 5,
  backoffBaseMs: 250,
  backoffCapMs: 5000,
  initialJitterMs: 1000,
  quietMs: 2000,
  leadersFirst: false,
  deadlineMs: 60000
}
const epoch = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const log = (msg) => process.stderr.write(`[storm] ${msg}\n`)
const bump = (obj, key, by = 1) => { obj[key] = (obj[key] || 0) + by }
const merge = (into, from) => { for (const [k, v] of Object.entries(from)) bump(into, k, v) }

function pct (sorted, p) {
  if (!sorted.length) return null
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)])
}
function stats (values) {
  const s = Float64Array.from(values).sort()
  return { n: s.length, p50: pct(s, 50), p95: pct(s, 95), p99: pct(s, 99), max: s.length ? Math.round(s[s.length - 1]) : null }
}

// ================================================================= worker
async function runWorker (cfg, specs) {
  const hocus = cfg.protocol === 'hocuspocus'
  const deadline = cfg.startEpoch + cfg.deadlineMs - 5000 // no attempt starts after this
  const closes = {}
  const statuses = {}
  const errors = {}
  const retryAfter = { close1013: 0, http503: 0 }
  let retries = 0
  let retriedSockets = 0
  let gaveUp = 0
  let closedAfterSync = 0
  const nodes = {} // x-atelier-node of the upgrade response (Atelier only)

  // a FIFO semaphore: handshakes in flight
  let free = Math.max(1, Math.floor(cfg.concurrency / cfg.processes))
  const waiting = []
  const acquire = () => (free > 0 ? (free--, Promise.resolve()) : new Promise((resolve) => waiting.push(resolve)))
  const release = () => { const next = waiting.shift(); if (next) next(); else free++ }

  function frame (doc, type, write) {
    const enc = encoding.createEncoder()
    if (hocus) encoding.writeVarString(enc, doc)
    encoding.writeVarUint(enc, type)
    write(enc)
    return encoding.toUint8Array(enc)
  }

  // One handshake: resolves {ok: true, ws} once the server's sync step 2 arrived, or
  // {ok: false, retryAfterMs} (null when the server gave no retry signal).
  function attempt (spec, onDrop) {
    return new Promise((resolve) => {
      let done = false
      let synced = false
      const fail = (retryAfterMs = null, signal = null) => {
        if (done) return
        done = true
        clearTimeout(timer)
        try { ws.terminate() } catch {}
        resolve({ ok: false, retryAfterMs, signal })
      }
      const q = spec.token && !hocus ? `?token=${encodeURIComponent(spec.token)}` : ''
      const url = cfg.hocusPath ? `${cfg.url}${cfg.hocusPath}` : `${cfg.url}${cfg.pathPrefix}/${spec.room}${q}`
      const ws = new WebSocket(url, { perMessageDeflate: false })
      const timer = setTimeout(() => { bump(errors, 'attempt timeout'); fail() }, cfg.attemptTimeoutMs)
      ws.on('upgrade', (res) => { const n = res.headers['x-atelier-node']; if (n) bump(nodes, n) })
      ws.on('unexpected-response', (req, res) => {
        bump(statuses, res.statusCode)
        let wait = null
        const h = res.headers['retry-after']
        if (res.statusCode === 503 && h !== undefined) {
          const secs = Number(h)
          wait = Number.isFinite(secs) ? secs * 1000 : Math.max(0, Date.parse(h) - Date.now())
          if (!Number.isFinite(wait)) wait = null
        }
        res.resume()
        req.destroy()
        fail(wait, 'http503')
      })
      ws.on('open', () => {
        if (hocus) ws.send(frame(spec.room, 2, (e) => { encoding.writeVarUint(e, 0); encoding.writeVarString(e, spec.token || '') }))
        // sync step 1 with an empty state vector
        ws.send(frame(spec.room, 0, (e) => { encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, Uint8Array.of(0)) }))
      })
      ws.on('message', (data) => {
        if (synced) return
        const dec = decoding.createDecoder(data)
        const doc = hocus ? decoding.readVarString(dec) : spec.room
        let type = decoding.readVarUint(dec)
        if (hocus && type === 4) type = 0
        if (type !== 0) return
        const st = decoding.readVarUint(dec)
        if (st === 0) ws.send(frame(doc, hocus ? 4 : 0, (e) => { encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, Uint8Array.of(0, 0)) }))
        else if (st === 1 && !done) {
          synced = true
          done = true
          clearTimeout(timer)
          resolve({ ok: true, ws })
        }
      })
      ws.on('error', (e) => { if (!done) { bump(errors, String(e.code || e.message).slice(0, 60)); fail() } })
      ws.on('close', (code, reason) => {
        if (synced) { onDrop(code); return }
        if (done) return
        bump(closes, code)
        const m = code === 1013 && /retry_after=([0-9]*\.?[0-9]+)/.exec(reason.toString())
        fail(m ? Number(m[1]) * 1000 : null, 'close1013')
      })
    })
  }

  // A socket until synced or given up: {ok, tries}. Times go into `rec`.
  async function connect (spec, rec, onDrop) {
    for (let tries = 1; ; tries++) {
      await acquire()
      const t = epoch()
      if (t > deadline) { release(); break }
      if (rec.start === undefined) rec.start = t
      const r = await attempt(spec, onDrop)
      release()
      if (r.ok) { rec.synced = epoch(); rec.attemptMs = rec.synced - t; rec.tries = tries; return true }
      if (tries >= cfg.maxTries) break
      let wait
      if (r.retryAfterMs !== null) wait = r.retryAfterMs * (1 + 0.2 * Math.random())
      else {
        const d = Math.min(cfg.backoffCapMs, cfg.backoffBaseMs * 2 ** (tries - 1))
        wait = d / 2 + Math.random() * (d / 2)
      }
      if (epoch() + wait > deadline) break
      if (r.retryAfterMs !== null) retryAfter[r.signal]++ // a retry signal waited for
      retries++
      if (tries === 1) retriedSockets++
      await sleep(wait)
    }
    gaveUp++
    return false
  }

  // ---------------------------------------------------------- phase 1: the storm
  const cpu0 = process.cpuUsage()
  const recs = specs.map(() => ({}))
  let drops = 0
  let resynced = 0
  let dropGaveUp = 0
  let lastEvent = 0
  const dropCloses = {}
  const reconnectMs = []
  let lastResync = null
  let firstDrop = null
  const failover = cfg.mode === 'failover'
  const onDropFor = (k) => (code) => {
    if (!failover) { closedAfterSync++; bump(closes, `${code} after sync`); return }
    drops++
    bump(dropCloses, code)
    const t0 = epoch()
    if (firstDrop === null) firstDrop = t0
    lastEvent = t0
    // like a browser: a first random wait, then the same retry rules
    sleep(Math.random() * cfg.initialJitterMs).then(async () => {
      const rec = {}
      if (await connect(specs[k], rec, onDropFor(k))) {
        resynced++
        reconnectMs.push(rec.synced - t0)
        lastResync = Math.max(lastResync || 0, rec.synced)
      } else dropGaveUp++
      lastEvent = epoch()
    })
  }
  // every socket is a task from the start; the semaphore decides which handshakes run
  const run = (ks) => Promise.all(ks.map((k) => connect(specs[k], recs[k], onDropFor(k))))
  const all = specs.map((_, k) => k)
  if (cfg.leadersFirst) {
    await run(all.filter((k) => specs[k].leader))
    await run(all.filter((k) => !specs[k].leader))
  } else await run(all)
  const cpu1 = process.cpuUsage(cpu0)
  const g0 = { retries, retriedSockets } // phase 2 counts from here
  const ok = recs.filter((r) => r.synced !== undefined)
  process.send({
    type: 'ready',
    synced: ok.length,
    total: specs.length,
    syncMs: ok.map((r) => r.synced - r.start),
    attemptMs: ok.map((r) => r.attemptMs),
    firstStart: Math.min(...recs.filter((r) => r.start !== undefined).map((r) => r.start)),
    lastSynced: ok.length ? Math.max(...ok.map((r) => r.synced)) : null,
    cpuMs: (cpu1.user + cpu1.system) / 1000,
    gaveUp,
    retries,
    retriedSockets,
    closes,
    statuses,
    errors,
    retryAfter,
    nodes,
    closedAfterSync,
    rssMiB: Math.round(process.memoryUsage().rss / 1048576)
  })
  if (!failover) return

  // ---------------------------------------------------------- phase 2: failover
  const msg = await new Promise((resolve) => process.once('message', resolve))
  const cpu2 = process.cpuUsage()
  const settleStart = epoch()
  lastEvent = Math.max(lastEvent, settleStart)
  for (;;) {
    const t = epoch()
    const pending = drops - resynced - dropGaveUp
    // done: every dropped socket is back (or gave up) and nothing dropped for quietMs;
    // with no drop at all, wait msg.noDropWaitMs before saying so
    if (pending === 0 && t - lastEvent >= cfg.quietMs && (drops > 0 || t - settleStart >= msg.noDropWaitMs)) break
    if (t > deadline + 2000) break
    await sleep(100)
  }
  const cpu3 = process.cpuUsage(cpu2)
  process.send({
    type: 'result',
    drops,
    resynced,
    gaveUp: dropGaveUp,
    pending: drops - resynced - dropGaveUp,
    reconnectMs,
    firstDrop,
    lastResync,
    dropCloses,
    retries: retries - g0.retries,
    retriedSockets: retriedSockets - g0.retriedSockets,
    closes,
    statuses,
    errors,
    retryAfter,
    nodes,
    cpuMs: (cpu3.user + cpu3.system) / 1000,
    settleMs: epoch() - settleStart
  })
}

// ================================================================= parent
async function runParent () {
  const cfg = { ...DEFAULTS, ...JSON.parse(process.argv[2]) }
  cfg.startEpoch = epoch()
  const P = Math.max(1, cfg.processes | 0)
  cfg.processes = P
  const R = cfg.rooms.length
  const total = cfg.total ?? R * cfg.perRoom
  const perWorker = Array.from({ length: P }, () => [])
  for (let i = 0; i < total; i++) {
    const room = cfg.rooms[i % R]
    const idx = Math.floor(i / R)
    const toks = cfg.tokens[room.split('/')[0]] || ['']
    const token = Array.isArray(toks) ? toks[idx % toks.length] : toks
    perWorker[i % P].push({ room, token, leader: idx === 0 })
  }
  const workers = perWorker.map((specs) => {
    const child = fork(fileURLToPath(import.meta.url), ['--worker'], { stdio: ['ignore', 2, 'inherit', 'ipc'] })
    child.send({ cfg, specs })
    return child
  })
  const phase = { now: 'storm' }
  const hard = setTimeout(() => {
    log(`hard deadline ${cfg.deadlineMs} ms reached in phase ${phase.now}: killing workers`)
    for (const c of workers) c.kill('SIGKILL')
    process.stdout.write(JSON.stringify({ ok: false, error: `deadline in phase ${phase.now}` }) + '\n')
    process.exit(2)
  }, cfg.deadlineMs)
  const nextMsg = (child, type) => new Promise((resolve, reject) => {
    const onMsg = (m) => { if (m.type === type) { child.off('message', onMsg); child.off('exit', onExit); resolve(m) } }
    const onExit = (code) => reject(new Error(`worker exited with ${code} before '${type}'`))
    child.on('message', onMsg)
    child.once('exit', onExit)
  })
  const sumOf = (rs, key) => rs.reduce((a, r) => a + r[key], 0)
  const mergeOf = (rs, key) => { const o = {}; for (const r of rs) merge(o, r[key]); return o }

  log(`${cfg.mode}: ${total} sockets in ${R} rooms, ${cfg.concurrency} in flight, ${P} process(es)`)
  const ready = await Promise.all(workers.map((c) => nextMsg(c, 'ready')))
  const synced = sumOf(ready, 'synced')
  const firstStart = Math.min(...ready.map((r) => r.firstStart))
  const lastSynced = Math.max(...ready.map((r) => r.lastSynced || 0))
  const wallMs = lastSynced > firstStart ? lastSynced - firstStart : null
  const storm = {
    ok: synced === total,
    mode: cfg.mode,
    total,
    rooms: R,
    concurrency: cfg.concurrency,
    processes: P,
    synced,
    failed: sumOf(ready, 'gaveUp'),
    retries: sumOf(ready, 'retries'),
    retriedSockets: sumOf(ready, 'retriedSockets'),
    connectsPerSec: wallMs ? Math.round(synced / (wallMs / 1000)) : null,
    wallMs: wallMs && Math.round(wallMs),
    firstStart,
    lastSynced,
    syncMs: stats(ready.flatMap((r) => r.syncMs)),
    attemptMs: stats(ready.flatMap((r) => r.attemptMs)),
    closes: mergeOf(ready, 'closes'),
    statuses: mergeOf(ready, 'statuses'),
    errors: mergeOf(ready, 'errors'),
    retryAfterHonoured: mergeOf(ready, 'retryAfter'),
    nodes: mergeOf(ready, 'nodes'),
    closedAfterSync: sumOf(ready, 'closedAfterSync'),
    generator: {
      cpuMs: Math.round(sumOf(ready, 'cpuMs')),
      cpuPct: wallMs ? Math.round((100 * sumOf(ready, 'cpuMs')) / wallMs) : null,
      rssMiB: sumOf(ready, 'rssMiB')
    }
  }
  log(`${synced}/${total} synced in ${storm.wallMs} ms (${storm.connectsPerSec}/s), ${storm.failed} gave up, ${storm.retries} retries`)
  if (cfg.mode !== 'failover') {
    clearTimeout(hard)
    process.stdout.write(JSON.stringify(storm) + '\n')
    for (const c of workers) c.kill('SIGKILL')
    process.exit(0)
  }
  process.stdout.write(JSON.stringify({ phase: 'synced', ...storm }) + '\n')
  phase.now = 'waiting for the kill'
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
  const line = await lines.next()
  phase.now = 'failover'
  const killEpoch = Number(String(line.value || '').trim().split(/\s+/)[1]) || epoch()
  const resultsP = Promise.all(workers.map((c) => nextMsg(c, 'result')))
  for (const c of workers) c.send({ type: 'settle', noDropWaitMs: 5000 })
  const res = await resultsP
  clearTimeout(hard)
  const lastResync = Math.max(...res.map((r) => r.lastResync || 0)) || null
  const drops = sumOf(res, 'drops')
  const resynced = sumOf(res, 'resynced')
  const settleMs = Math.max(...res.map((r) => r.settleMs))
  process.stdout.write(JSON.stringify({
    ok: storm.ok && drops > 0 && resynced === drops,
    mode: 'failover',
    storm,
    killEpoch,
    drops,
    resynced,
    failed: sumOf(res, 'gaveUp'),
    pending: sumOf(res, 'pending'),
    retries: sumOf(res, 'retries'),
    retriedSockets: sumOf(res, 'retriedSockets'),
    killToAllSyncedMs: lastResync && Math.round(lastResync - killEpoch),
    firstDropAfterKillMs: res.some((r) => r.firstDrop) ? Math.round(Math.min(...res.filter((r) => r.firstDrop).map((r) => r.firstDrop)) - killEpoch) : null,
    lastResync,
    reconnectMs: stats(res.flatMap((r) => r.reconnectMs)),
    dropCloses: mergeOf(res, 'dropCloses'),
    closes: mergeOf(res, 'closes'),
    statuses: mergeOf(res, 'statuses'),
    errors: mergeOf(res, 'errors'),
    retryAfterHonoured: mergeOf(res, 'retryAfter'),
    nodesAfter: mergeOf(res, 'nodes'),
    generator: { cpuMs: Math.round(sumOf(res, 'cpuMs')), cpuPct: Math.round((100 * sumOf(res, 'cpuMs')) / settleMs) }
  }) + '\n')
  for (const c of workers) c.kill('SIGKILL')
  process.exit(0)
}

if (process.argv.includes('--worker')) {
  process.once('message', ({ cfg, specs }) => {
    runWorker(cfg, specs).catch((e) => { log(`worker crashed: ${e.stack}`); process.exit(1) })
  })
} else {
  runParent().catch((e) => { log(`crashed: ${e.stack}`); process.stdout.write(JSON.stringify({ ok: false, error: String(e) }) + '\n'); process.exit(1) })
}
