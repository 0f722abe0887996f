#!/usr/bin/env node
// A compressed school day (issue 15, part 4): the 08:00 storm, lessons with typing, chat,
// presence and a teacher console per class, breaks with reconnects, then everyone leaves.
//
// Usage: node schoolday.mjs CONFIG      (CONFIG: a JSON string, or a path to a JSON file)
// stdout: one JSON line per sync point ({"point": NAME, "t": epochMs}); the script then waits
// for a line on stdin ("go"; "stop" ends the day early) so that the driver can read the
// servers' RSS at that exact point. The last line is the result ({"result": {...}}).
// Progress goes to stderr. A hard deadline (deadlineMs) prints {ok: false} and exits.
//
// Config (Python's bench/schoolday.py writes it):
//   urls            [ws://node0, ws://node1]; room k's sockets all go to urls[roomNode[k]]
//   roomNode        {room_id: node index}          (as nginx's consistent hash would do)
//   school          {classes: [{id, teacher, parents: [user], groups: [{id, students}]}]}
//   tokens          {user_id: token}               ('' for the peers: they check none)
//   protocol        "atelier" (docs over /yjs + room channels over /rooms/{id}/live),
//                   "y-websocket" or "hocuspocus" (docs only, with Hocuspocus' framing)
//   docsPerGroup D, classDocs C, tabs [1, 2, 3] (tabs of student j: tabs[j % len]), parentTabs
//   stormWindowMs, lessons, lessonMs, breakMs, breakShare, drainMs, connectTimeoutMs
//   typingRate (updates/s per student, average), burstRate (updates/s inside a burst),
//   teacherRate (updates/s of the teacher in the first class doc),
//   chatGroupMs / chatClassMs / chatTeacherMs (mean gap between a poster's messages)
//   seed            the day's plan (who writes where, who drops at the break) is reproducible
//
// Who opens what (one "tab" = the sockets one browser tab holds):
//   student tab: the D docs of the group + the group's channel; the student's first tab also
//                holds the class channel and the C class docs (read-only);
//   teacher console: the class channel + every doc of the class's 5 groups; the teacher also
//                writes in the first class doc;
//   parent tab:  the class channel (events only, no chat) + the C class docs (read-only).
// Writers: doc d of a group is typed in by student j when j ≡ d (mod min(D, 6)), from the
// student's first tab; a student's typingRate is split over their docs and sent in bursts
// (3–12 keystrokes at burstRate, then a pause), each keystroke one Yjs transaction that
// inserts a character in Y.Text "t" and sets key <writer> of Y.Map "bench" to
// [seq, sendEpochMs, writer]. As in loadgen.mjs, Yjs integrates a client's structs in clock
// order, so a receiver that saw seq k holds 1..k: missing = Σ (sent − last seq seen).
// Chat: every accepted post (the server's `ok`) must reach every chat member's socket in
// the room (from `message`, or from `hello.history` after a reconnect): missing otherwise.
import { createInterface } from 'node:readline'
import { readFileSync } from 'node:fs'
import { performance, monitorEventLoopDelay } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import { encode as mpEncode, decode as mpDecode } from '@msgpack/msgpack'

const DEFAULTS = {
  urls: ['ws://127.0.0.1:8000'],
  roomNode: {},
  tokens: {},
  protocol: 'atelier',
  docsPerGroup: 20,
  classDocs: 2,
  tabs: [1, 2, 3],
  parentTabs: 3,
  stormWindowMs: 3000,
  stormMaxMs: 60000,
  lessons: 3,
  lessonMs: 20000,
  breakMs: 10000,
  breakShare: 0.3,
  breakSettleMaxMs: 30000,
  drainMs: 3000,
  connectTimeoutMs: 20000,
  maxAttempts: 6,
  typingRate: 3,
  burstRate: 8,
  teacherRate: 1,
  chatGroupMs: 15000,
  chatClassMs: 40000,
  chatTeacherMs: 10000,
  presence: true,
  seed: 15,
  deadlineMs: 0,
  label: ''
}

const now = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
const REMOTE = Symbol('remote')
const log = (...a) => process.stderr.write(`[schoolday] ${a.join(' ')}\n`)
const bump = (obj, key, by = 1) => { obj[key] = (obj[key] || 0) + by }

// ---------------------------------------------------------------- latency histogram (as loadgen.mjs)
const H_BASE = 0.01
const H_LN = Math.log(1.02)
const H_SIZE = 900
const hNew = () => ({ counts: new Array(H_SIZE).fill(0), n: 0, sum: 0, max: 0 })
function hAdd (h, ms) {
  let i = ms <= H_BASE ? 0 : Math.ceil(Math.log(ms / H_BASE) / H_LN)
  if (i >= H_SIZE) i = H_SIZE - 1
  h.counts[i]++; h.n++; h.sum += ms
  if (ms > h.max) h.max = ms
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
const r1 = (x) => x == null ? null : Math.round(x * 10) / 10
const hSummary = (h) => ({ n: h.n, p50: r1(hPct(h, 50)), p99: r1(hPct(h, 99)), max: h.n ? r1(h.max) : null })

// ---------------------------------------------------------------- seeded randomness (mulberry32)
function rng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// ---------------------------------------------------------------- config
let raw = process.argv[2]
if (!raw) { log('usage: node schoolday.mjs CONFIG_JSON_OR_FILE'); process.exit(64) }
if (!raw.trimStart().startsWith('{')) raw = readFileSync(raw, 'utf8')
const cfg = { ...DEFAULTS, ...JSON.parse(raw) }
const rand = rng(cfg.seed)
const ATELIER = cfg.protocol === 'atelier'
const HOCUS = cfg.protocol === 'hocuspocus'
if (!cfg.deadlineMs) {
  cfg.deadlineMs = cfg.stormWindowMs + cfg.stormMaxMs + cfg.lessons * (cfg.lessonMs + cfg.drainMs + 5000) +
    (cfg.lessons - 1) * (cfg.breakMs + cfg.breakSettleMaxMs) + 60000
}

// ---------------------------------------------------------------- the day's state
const day = {
  phase: 'start',
  stopping: false,
  errors: {}, // phase -> {what: n}
  closes: {}, // phase -> {code: n}
  unexpected: {}, // phase -> n
  connect: {}, // tag -> {attempts, synced, failed, retries, first, last, ttsHist, hsHist}
  docLat: {}, // phase -> histogram (doc updates)
  chatLat: {}, // phase -> histogram (chat)
  docDelivered: {},
  presenceIn: {},
  progress: {}, // phase -> {frames, docs: Set}
  chatLeaks: 0,
  posts: new Map(), // key -> {room, t, phase, acked, refused}
  refs: new Map() // ref -> post key
}
const errs = () => (day.errors[day.phase] ??= {})
const conn = (tag) => (day.connect[tag] ??= { attempts: 0, synced: 0, failed: 0, retries: 0, first: Infinity, last: 0, tts: hNew(), hs: hNew() })
const lat = (bag, phase) => (bag[phase] ??= hNew())

function urlOf (room) {
  return cfg.urls[(cfg.roomNode[room] ?? 0) % cfg.urls.length]
}

// ---------------------------------------------------------------- a socket that (re)connects
class Sock {
  constructor (tab) {
    this.tab = tab
    this.ws = null
    this.synced = false
    this.dropping = false
  }

  /** One attempt: resolves true when synced, false on failure (never rejects). */
  attempt (tag) {
    const c = conn(tag)
    c.attempts++
    const t0 = now()
    return new Promise((resolve) => {
      let done = false
      const finish = (ok) => {
        if (done) return
        done = true
        clearTimeout(timer)
        if (ok) hAdd(c.hs, now() - t0)
        resolve(ok)
      }
      const timer = setTimeout(() => { bump(errs(), 'handshake timeout'); try { ws.terminate() } catch {} finish(false) }, cfg.connectTimeoutMs)
      const ws = new WebSocket(this.url(), { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
      this.ws = ws
      this.synced = false
      this.onSynced = () => { this.synced = true; finish(true) }
      ws.binaryType = 'nodebuffer'
      ws.on('open', () => this.onOpen(ws))
      ws.on('message', (data) => {
        try { this.onMessage(data) } catch (e) { bump(errs(), `decode: ${String(e.message).slice(0, 60)}`) }
      })
      ws.on('error', (e) => { bump(errs(), `ws error: ${String(e.message).slice(0, 60)}`); finish(false) })
      ws.on('close', (code) => {
        bump((day.closes[day.phase] ??= {}), String(code))
        const wasSynced = this.synced
        this.synced = false
        finish(false)
        if (wasSynced && !day.stopping && !this.dropping && this.ws === ws) {
          bump(day.unexpected, day.phase)
          if ((day.unexpected[day.phase] || 0) <= 5) log(`unexpected close ${code} (${this.name()}) in ${day.phase}`)
          this.open('recovery') // a real client reconnects; the replica repairs the gap
        }
      })
    })
  }

  /** Attempts with jittered backoff until synced (or maxAttempts): time to synced from the first. */
  async open (tag) {
    const c = conn(tag)
    const t0 = now()
    c.first = Math.min(c.first, t0)
    for (let a = 0; a < cfg.maxAttempts; a++) {
      if (day.stopping) return false
      if (a > 0) { c.retries++; await sleep(Math.min(8000, 500 * 2 ** (a - 1)) * (0.5 + rand())) }
      if (await this.attempt(tag)) {
        c.synced++
        c.last = Math.max(c.last, now())
        hAdd(c.tts, now() - t0)
        return true
      }
    }
    c.failed++
    return false
  }

  drop () {
    this.dropping = true
    this.synced = false
    if (this.ws) this.ws.terminate() // a lid closed: no close handshake
  }

  close () {
    return new Promise((resolve) => {
      const ws = this.ws
      if (!ws || ws.readyState === 3) return resolve()
      const t = setTimeout(() => { ws.terminate(); resolve() }, 3000)
      ws.once('close', () => { clearTimeout(t); resolve() })
      ws.close(1000, 'end of the day')
    })
  }

  send (bytes) {
    if (this.ws && this.ws.readyState === 1) { this.ws.send(bytes); return true }
    return false
  }
}

// ---------------------------------------------------------------- a doc socket (y-websocket or Hocuspocus framing)
class DocSock extends Sock {
  constructor (tab, room, doc) {
    super(tab)
    this.room = room
    this.path = `${room}/${doc}`
    this.doc = new Y.Doc()
    this.map = this.doc.getMap('bench')
    this.text = this.doc.getText('t')
    this.lastSeq = new Map()
    this.wid = null
    this.seq = 0
    if (HOCUS) {
      const enc = encoding.createEncoder()
      encoding.writeVarString(enc, this.path)
      this.prefix = encoding.toUint8Array(enc)
    }
    this.map.observe((ev) => {
      const t = now()
      for (const key of ev.keysChanged) {
        if (key === this.wid) continue
        const v = this.map.get(key)
        if (!Array.isArray(v)) continue
        const [seq, sentAt] = v
        const last = this.lastSeq.get(key) || 0
        if (seq <= last) continue
        this.lastSeq.set(key, seq)
        bump(day.docDelivered, day.phase, seq - last)
        const ph = writePhase(sentAt)
        if (ph) hAdd(lat(day.docLat, ph), t - sentAt)
      }
    })
  }

  name () { return this.path }

  url () {
    const q = ATELIER ? `?token=${encodeURIComponent(this.tab.token)}` : ''
    return `${urlOf(this.room)}/yjs/${this.path}${q}`
  }

  encoder (type) {
    const enc = encoding.createEncoder()
    if (HOCUS) encoding.writeUint8Array(enc, this.prefix)
    encoding.writeVarUint(enc, type)
    return enc
  }

  makeWriter (wid) {
    this.wid = wid
    this.doc.on('update', (update, origin) => {
      if (origin === REMOTE) return
      const enc = this.encoder(0)
      syncProtocol.writeUpdate(enc, update)
      this.send(encoding.toUint8Array(enc)) // offline: kept in the replica, sent by the next sync
    })
  }

  type () {
    this.seq++
    const seq = this.seq
    this.doc.transact(() => {
      this.text.insert(this.text.length, seq % 40 === 0 ? '\n' : 'abcdefghij'[seq % 10])
      this.map.set(this.wid, [seq, now(), this.wid])
    })
  }

  onOpen (ws) {
    if (HOCUS) {
      const auth = this.encoder(2)
      encoding.writeVarUint(auth, 0)
      encoding.writeVarString(auth, this.tab.token || '')
      ws.send(encoding.toUint8Array(auth))
    }
    const enc = this.encoder(0)
    syncProtocol.writeSyncStep1(enc, this.doc)
    ws.send(encoding.toUint8Array(enc))
  }

  onMessage (data) {
    const dec = decoding.createDecoder(data)
    if (HOCUS) decoding.readVarString(dec)
    let type = decoding.readVarUint(dec)
    if (HOCUS) {
      if (type === 4) type = 0
      else if (type === 8) return
      else if (type === 2) {
        if (decoding.readVarUint(dec) === 1) bump(errs(), 'auth: permission denied')
        return
      }
    }
    if (type === 0) {
      const enc = this.encoder(HOCUS ? 4 : 0)
      const headerLen = encoding.length(enc)
      const st = syncProtocol.readSyncMessage(dec, enc, this.doc, REMOTE)
      if (encoding.length(enc) > headerLen) this.send(encoding.toUint8Array(enc))
      if (st === 1 && !this.synced) this.onSynced()
    } else if (type === 2) {
      let reason = ''
      try { decoding.readVarUint(dec); reason = decoding.readVarString(dec) } catch {}
      bump(errs(), `auth: ${reason.slice(0, 60)}`)
    } // 1 awareness, 3 query-awareness: not measured
  }
}

// ---------------------------------------------------------------- a room channel (Atelier only)
class LiveSock extends Sock {
  constructor (tab, room, chat) {
    super(tab)
    this.room = room
    this.chat = chat // a chat member: must see every message of the room
    this.seen = new Set()
  }

  name () { return `${this.room}/live` }
  url () { return `${urlOf(this.room)}/rooms/${this.room}/live?token=${encodeURIComponent(this.tab.token)}` }
  onOpen () {}

  frame (obj) { return this.send(mpEncode(obj)) }

  onMessage (data) {
    const t = now()
    const f = mpDecode(data)
    switch (f.t) {
      case 'hello':
        for (const m of f.history || []) this.onChat(m, null)
        this.onSynced()
        break
      case 'message':
        this.onChat(f.message, t)
        break
      case 'presence_state':
      case 'presence_diff':
        bump(day.presenceIn, day.phase)
        break
      case 'event':
        if (f.kind === 'progress') {
          const p = (day.progress[day.phase] ??= { frames: 0, docs: new Set() })
          p.frames++
          p.docs.add(`${f.room}/${f.doc}`)
        }
        break
      case 'ok': {
        const key = day.refs.get(f.ref)
        if (key) day.posts.get(key).acked = true
        break
      }
      case 'error': {
        const key = day.refs.get(f.ref)
        if (key) day.posts.get(key).refused = f.code
        bump(errs(), `chat error: ${f.code}`)
        break
      }
    }
  }

  onChat (m, t) {
    const parts = (m.text || '').split(' ')
    if (parts[0] !== 'sd') return
    if (!this.chat) { day.chatLeaks++; return }
    const key = `${parts[1]}:${parts[2]}`
    if (this.seen.has(key)) return
    this.seen.add(key)
    const post = day.posts.get(key)
    if (t !== null && post) hAdd(lat(day.chatLat, post.phase), t - post.t)
  }

  post (user, k) {
    const key = `${user}:${k}`
    const t = now()
    const ref = `r${day.refs.size}`
    day.posts.set(key, { room: this.room, t, phase: day.phase, acked: false, refused: null })
    day.refs.set(ref, key)
    if (!this.frame({ t: 'post', text: `sd ${user} ${k} ${Math.round(t)}`, ref })) {
      day.posts.get(key).refused = 'not connected'
    }
  }
}

// ---------------------------------------------------------------- the school's tabs
class Tab {
  constructor (user, role) {
    this.user = user
    this.role = role
    this.token = cfg.tokens[user] || ''
    this.socks = []
  }

  add (s) { this.socks.push(s); return s }
  async open (tag) { const r = await Promise.all(this.socks.map((s) => s.open(tag))); return r.every(Boolean) }
}

const tabs = []
const docSocks = []
const liveSocks = []
const writerSlots = [] // {sock, student, rate, liveSock}
const teacherSlots = []
const posters = [] // {user, sock, meanMs}
const docNames = Array.from({ length: cfg.docsPerGroup }, (_, d) => `d${d}`)
const classDocNames = Array.from({ length: cfg.classDocs }, (_, d) => `cours${d}`)
const docSock = (tab, room, doc) => { const s = tab.add(new DocSock(tab, room, doc)); docSocks.push(s); return s }
const liveSock = (tab, room, chat) => { if (!ATELIER) return null; const s = tab.add(new LiveSock(tab, room, chat)); liveSocks.push(s); return s }

for (const cls of cfg.school.classes) {
  // teacher console: class channel + every group doc; writes in the first class doc
  const console_ = new Tab(cls.teacher, 'teacher')
  tabs.push(console_)
  const tLive = liveSock(console_, cls.id, true)
  if (tLive) posters.push({ user: cls.teacher, sock: tLive, meanMs: cfg.chatTeacherMs })
  for (const g of cls.groups) for (const d of docNames) docSock(console_, g.id, d)
  classDocNames.forEach((d, k) => {
    const s = docSock(console_, cls.id, d)
    if (k === 0 && cfg.teacherRate > 0) { s.makeWriter(`${cls.teacher}@${cls.id}/${d}`); teacherSlots.push({ sock: s, rate: cfg.teacherRate }) }
  })
  for (const g of cls.groups) {
    const mod = Math.min(cfg.docsPerGroup, 6)
    g.students.forEach((student, j) => {
      const nTabs = cfg.tabs[j % cfg.tabs.length]
      const mine = docNames.filter((_, d) => d % mod === j % mod && j < 6)
      for (let k = 0; k < nTabs; k++) {
        const tab = new Tab(student, 'student')
        tabs.push(tab)
        const socks = docNames.map((d) => docSock(tab, g.id, d))
        const gLive = liveSock(tab, g.id, true)
        if (k === 0) {
          for (const d of mine) {
            const s = socks[docNames.indexOf(d)]
            s.makeWriter(`${student}@${s.path}`)
            writerSlots.push({ sock: s, rate: cfg.typingRate / mine.length, live: gLive, doc: d })
          }
          if (gLive) posters.push({ user: student, sock: gLive, meanMs: cfg.chatGroupMs })
          const cLive = liveSock(tab, cls.id, true)
          if (cLive) posters.push({ user: student, sock: cLive, meanMs: cfg.chatClassMs })
          for (const d of classDocNames) docSock(tab, cls.id, d)
        }
      }
    })
  }
  for (const parent of cls.parents || []) {
    for (let k = 0; k < cfg.parentTabs; k++) {
      const tab = new Tab(parent, 'parent')
      tabs.push(tab)
      liveSock(tab, cls.id, false)
      for (const d of classDocNames) docSock(tab, cls.id, d)
    }
  }
}
const totalSockets = docSocks.length + liveSocks.length
// writers of each doc path, to count what each receiver misses
const writersOf = new Map()
for (const s of docSocks) if (s.wid) (writersOf.get(s.path) ?? writersOf.set(s.path, []).get(s.path)).push(s)

// a write's phase: writes only happen inside lessons, so the send time names the lesson
const lessonWindows = [] // [start, end, name]
function writePhase (t) {
  for (const [a, b, name] of lessonWindows) if (t >= a && t < b) return name
  return null
}

// ---------------------------------------------------------------- sync points with the driver
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const points = []
async function point (name) {
  const p = { point: name, t: Math.round(now()), open: docSocks.concat(liveSocks).filter((s) => s.synced).length }
  points.push(p)
  process.stdout.write(JSON.stringify(p) + '\n')
  const line = await lines.next()
  if (line.done || line.value.trim() === 'stop') throw new Error(`stopped by the driver at ${name}`)
}

// ---------------------------------------------------------------- phases
const phases = {}

async function storm () {
  day.phase = 'storm'
  log(`storm: ${tabs.length} tabs, ${totalSockets} sockets (${docSocks.length} docs, ${liveSocks.length} channels) over ${cfg.stormWindowMs} ms`)
  const t0 = now()
  const all = Promise.all(tabs.map(async (tab) => {
    await sleep(rand() * cfg.stormWindowMs)
    return tab.open('storm')
  }))
  await Promise.race([all, sleep(cfg.stormMaxMs)])
  phases.storm = { ms: Math.round(now() - t0), ...connectSummary('storm') }
  log(`storm: ${phases.storm.synced}/${totalSockets} synced in ${phases.storm.ms} ms, ${phases.storm.perSecond}/s, time to synced p99 ${phases.storm.timeToSyncedMs.p99} ms`)
}

function connectSummary (tag) {
  const c = conn(tag)
  const span = c.last - c.first
  return {
    sockets: c.synced + c.failed,
    synced: c.synced,
    failed: c.failed,
    attempts: c.attempts,
    retries: c.retries,
    spanMs: Math.round(span),
    perSecond: span > 0 ? Math.round(c.synced / (span / 1000)) : null,
    timeToSyncedMs: hSummary(c.tts),
    handshakeMs: hSummary(c.hs)
  }
}

async function lesson (n) {
  const name = `lesson${n}`
  day.phase = name
  const t0 = now()
  const end = t0 + cfg.lessonMs
  lessonWindows.push([t0, end, name])
  const sentBefore = docSocks.reduce((a, s) => a + s.seq, 0)
  const postsBefore = day.posts.size
  let presenceOut = 0
  const typed = new Set()

  const typist = async (slot) => {
    // bursts of 3–12 keystrokes at burstRate, pauses so that the average is slot.rate
    await sleep(rand() * Math.min(3000, 1000 / slot.rate))
    while (now() < end) {
      const n = 3 + Math.floor(rand() * 10)
      if (cfg.presence && slot.live && slot.live.frame({ t: 'presence', doc: slot.doc, typing: true })) presenceOut++
      for (let i = 0; i < n && now() < end; i++) {
        slot.sock.type()
        typed.add(slot.sock.path)
        await sleep(1000 / cfg.burstRate)
      }
      if (cfg.presence && slot.live && slot.live.frame({ t: 'presence', doc: slot.doc, typing: false })) presenceOut++
      const pauseMs = Math.max(0, n / slot.rate - n / cfg.burstRate) * 1000
      await sleep(Math.min(pauseMs * (0.5 + rand()), end - now()))
    }
  }
  const teacher = async (slot) => {
    await sleep(rand() * 1000)
    while (now() < end) { slot.sock.type(); await sleep(Math.min((1000 / slot.rate) * (0.5 + rand()), end - now())) }
  }
  const chatter = async (p) => {
    // Poisson-ish gaps, well inside the chat limit (20 a minute, burst 5, per user and room)
    const until = (ms) => sleep(Math.min(ms, end - now())) // never past the lesson's end
    await until(rand() * p.meanMs)
    let k = 0
    while (now() < end) {
      p.sock.post(p.user, `${n}.${p.sock.room}.${k++}`)
      await until(p.meanMs * (0.5 + rand()))
    }
  }
  await Promise.all([...writerSlots.map(typist), ...teacherSlots.map(teacher), ...posters.map(chatter)])
  await sleep(Math.max(0, end - now()) + cfg.drainMs)

  // ------ accounting after the drain
  let sent = 0
  let missing = 0
  let expected = 0
  let receiversBehind = 0
  for (const s of docSocks) {
    for (const w of writersOf.get(s.path) || []) {
      if (w === s) continue
      expected += w.seq
      const gap = w.seq - (s.lastSeq.get(w.wid) || 0)
      if (gap > 0) { missing += gap; receiversBehind++ }
    }
  }
  sent = docSocks.reduce((a, s) => a + s.seq, 0) - sentBefore
  const membersOf = new Map()
  for (const s of liveSocks) if (s.chat) (membersOf.get(s.room) ?? membersOf.set(s.room, []).get(s.room)).push(s)
  let posted = 0, acked = 0, refused = 0, chatExpected = 0, chatDelivered = 0, chatMissing = 0
  const refusedBy = {}
  let i = 0
  for (const [key, p] of day.posts) {
    if (i++ < postsBefore) continue
    posted++
    if (p.refused) { refused++; bump(refusedBy, p.refused); continue }
    if (!p.acked) continue // counted below as unacknowledged
    acked++
    for (const m of membersOf.get(p.room) || []) {
      chatExpected++
      if (m.seen.has(key)) chatDelivered++
      else chatMissing++
    }
  }
  const prog = day.progress[name] || { frames: 0, docs: new Set() }
  const groupDocsTyped = [...typed].filter((p) => !cfg.school.classes.some((c) => p.startsWith(`${c.id}/`)))
  phases[name] = {
    ms: Math.round(now() - t0),
    doc: {
      sent,
      deliveredInPhase: day.docDelivered[name] || 0,
      expectedCumulative: expected,
      missing,
      receiversBehind,
      latencyMs: hSummary(lat(day.docLat, name))
    },
    ...(ATELIER
      ? {
          chat: {
            posted,
            acked,
            refused,
            refusedBy,
            unacknowledged: posted - acked - refused,
            expected: chatExpected,
            delivered: chatDelivered,
            missing: chatMissing,
            latencyMs: hSummary(lat(day.chatLat, name))
          },
          presence: { framesOut: presenceOut, framesIn: day.presenceIn[name] || 0 },
          // every group doc typed in during the lesson should show on its class's console
          console: { progressFrames: prog.frames, progressDocs: prog.docs.size, docsTyped: groupDocsTyped.length, docsCovered: groupDocsTyped.filter((p) => prog.docs.has(p)).length }
        }
      : {}),
    unexpectedCloses: day.unexpected[name] || 0
  }
  const ph = phases[name]
  log(`${name}: doc p50/p99 ${ph.doc.latencyMs.p50}/${ph.doc.latencyMs.p99} ms, ${sent} sent, missing ${missing}` +
    (ATELIER ? ` | chat p50/p99 ${ph.chat.latencyMs.p50}/${ph.chat.latencyMs.p99} ms, ${ph.chat.acked} posts, missing ${ph.chat.missing} | progress ${prog.frames} frames, ${ph.console.docsCovered}/${ph.console.docsTyped} docs typed in` : ''))
  if (missing || (ATELIER && (ph.chat.missing || ph.chat.unacknowledged))) log(`!!! ${name}: SOMETHING IS MISSING`)
}

async function recess (n) {
  const name = `break${n}`
  day.phase = name
  const t0 = now()
  const tag = `reconnect${n}`
  const chosen = tabs.filter(() => rand() < cfg.breakShare)
  const sockets = chosen.reduce((a, t) => a + t.socks.length, 0)
  await Promise.all(chosen.map(async (tab) => {
    await sleep(rand() * 1000) // lids close over a second
    for (const s of tab.socks) s.drop()
    await sleep(1000 + rand() * cfg.breakMs * 0.6) // … and open again, jittered
    for (const s of tab.socks) s.dropping = false
    await tab.open(tag)
  }).concat([sleep(cfg.breakMs)]))
  // wait for stragglers (bounded), then idle out the break
  const settle = now() + cfg.breakSettleMaxMs
  while (now() < settle && chosen.some((t) => t.socks.some((s) => !s.synced))) await sleep(100)
  phases[name] = { ms: Math.round(now() - t0), tabsDropped: chosen.length, socketsDropped: sockets, ...connectSummary(tag), unexpectedCloses: day.unexpected[name] || 0 }
  log(`${name}: ${chosen.length} tabs (${sockets} sockets) dropped and back: ${phases[name].synced} synced, ${phases[name].perSecond}/s, time to synced p99 ${phases[name].timeToSyncedMs.p99} ms`)
}

async function leave () {
  day.phase = 'end'
  day.stopping = true
  const t0 = now()
  const all = docSocks.concat(liveSocks)
  await Promise.all(all.map((s) => s.close()))
  phases.end = { ms: Math.round(now() - t0), sockets: all.length }
}

// ---------------------------------------------------------------- main
const hard = setTimeout(() => {
  log(`hard deadline ${cfg.deadlineMs} ms reached in phase ${day.phase}`)
  process.stdout.write(JSON.stringify({ result: { ok: false, error: `deadline in ${day.phase}`, phases, points } }) + '\n')
  process.exit(2)
}, cfg.deadlineMs)

const loopDelay = monitorEventLoopDelay({ resolution: 10 })
const cpu0 = process.cpuUsage()
const started = now()
let error = null
try {
  await point('start')
  loopDelay.enable()
  await storm()
  await point('storm')
  for (let n = 1; n <= cfg.lessons; n++) {
    await lesson(n)
    await point(`lesson${n}`)
    if (n < cfg.lessons) {
      await recess(n)
      await point(`break${n}`)
    }
  }
  await leave()
  await point('end')
} catch (e) {
  error = String(e.message || e)
  log(`day stopped: ${error}`)
  day.stopping = true
  for (const s of docSocks.concat(liveSocks)) if (s.ws) s.ws.terminate()
}
clearTimeout(hard)
loopDelay.disable()
const cpu = process.cpuUsage(cpu0)
const lessons = Object.entries(phases).filter(([k]) => k.startsWith('lesson')).map(([, v]) => v)
const missingDoc = lessons.reduce((a, l) => Math.max(a, l.doc.missing), 0)
const missingChat = lessons.reduce((a, l) => a + (l.chat ? l.chat.missing + l.chat.unacknowledged : 0), 0)
const failed = Object.values(day.connect).reduce((a, c) => a + c.failed, 0)
const result = {
  ok: !error && missingDoc === 0 && missingChat === 0 && failed === 0 && day.chatLeaks === 0,
  error,
  label: cfg.label,
  protocol: cfg.protocol,
  layout: {
    tabs: tabs.length,
    sockets: totalSockets,
    docSockets: docSocks.length,
    channelSockets: liveSocks.length,
    docs: new Set(docSocks.map((s) => s.path)).size,
    writers: writerSlots.length + teacherSlots.length,
    chatPosters: posters.length,
    nodes: cfg.urls.length
  },
  phases,
  missing: { doc: missingDoc, chat: missingChat },
  failedConnects: failed,
  recoveryConnects: day.connect.recovery ? connectSummary('recovery') : null,
  chatLeaksToParents: day.chatLeaks,
  errors: day.errors,
  closes: day.closes,
  unexpectedCloses: day.unexpected,
  points,
  generator: {
    cpuS: r1((cpu.user + cpu.system) / 1e6),
    loopDelayP99Ms: r1(loopDelay.count ? loopDelay.percentile(99) / 1e6 : null),
    loopDelayMaxMs: r1(loopDelay.count ? loopDelay.max / 1e6 : null),
    rssMiB: Math.round(process.memoryUsage().rss / 1048576)
  },
  wallMs: Math.round(now() - started)
}
process.stdout.write(JSON.stringify({ result }) + '\n')
process.exit(0)
