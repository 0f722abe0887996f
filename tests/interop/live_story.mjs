#!/usr/bin/env node
// The room-channel story played by client_demo/src/live.js (RoomChannel) under Node,
// against a real Atelier server (docs/protocol.md).
//
//   connect     two students of a group and the class teacher open the group room
//   presence    all three see each other; a second tab of a student is one user with two
//               metas; a typing indicator (and the open doc) travels; bursts are coalesced
//   chat        they chat both ways (concurrently too); all three hold the same messages in
//               the same seq order, each received once, in seq order, with no gap
//   editDelete  a student edits and deletes their own message, cannot edit or delete
//               another's (forbidden); the teacher deletes a student's message; empty and
//               too-long messages are refused
//   mute        the teacher mutes student 2: everyone gets `muted`, their post is refused
//               (muted); a student cannot mute; unmute and student 2 posts again
//   parent      a parent on the class room: hello with chat false, no history, no presence
//               (and nobody sees the parent); a post is refused (forbidden); ping works
//   refusals    4401 (bad token: final at once; token function: asked once more, then
//               final) and 4403 (another group's room): no reconnection
//   reconnect   student 1's socket is cut (terminate, no close handshake) while student 2
//               posts: the channel reconnects after a jittered delay, its history has
//               every message exactly once, its presence is the new hello's (one meta), and
//               its open doc is announced again
//   backoff     a channel whose next three connection attempts fail: delays grow
//               exponentially up to the cap; a connection that stayed open resets them
//   rateLimit   a burst of posts ends in rate_limited with retry_after; the next post is
//               held back locally until then
//   close       close() is final: state closed, `closed` event, requests refused
//
// Configuration: JSON in env INTEROP_CONFIG:
//   {url: "ws://127.0.0.1:8000", room: "2nde-a-g1", classRoom: "2nde-a",
//    otherRoom: "2nde-a-g2", tokens: {student1, student2, teacher, parent}, timeoutMs: 10000}
// The students must belong to `room` (and the class of `classRoom`), not to `otherRoom`;
// the teacher teaches the class; the parent is a parent of a student of the class.
//
// Exit 0 and a JSON report on stdout when every check passed; exit 1 with the failing
// phase and a per-client diagnosis on stderr otherwise; exit 2 on bad configuration.
// Tokens are never printed.

import WebSocket from 'ws'
import { LiveError, RoomChannel } from '../../client_demo/src/live.js'

// ---------------------------------------------------------------- configuration

function readConfig () {
  let raw
  try {
    raw = JSON.parse(process.env.INTEROP_CONFIG ?? '{}')
  } catch (error) {
    process.stderr.write(`live_story: INTEROP_CONFIG is not JSON: ${error.message}\n`)
    process.exit(2)
  }
  const config = {
    url: raw.url,
    room: raw.room ?? '2nde-a-g1',
    classRoom: raw.classRoom ?? '2nde-a',
    otherRoom: raw.otherRoom ?? '2nde-a-g2',
    tokens: raw.tokens ?? {},
    timeoutMs: Number(raw.timeoutMs ?? 10000)
  }
  const problems = []
  if (typeof config.url !== 'string' || !/^wss?:\/\//.test(config.url)) {
    problems.push('url is required (the ws base, e.g. ws://127.0.0.1:8000)')
  }
  for (const who of ['student1', 'student2', 'teacher', 'parent']) {
    if (typeof config.tokens[who] !== 'string' || !config.tokens[who]) problems.push(`tokens.${who} is required`)
  }
  if (!Number.isInteger(config.timeoutMs) || config.timeoutMs < 1000) problems.push('timeoutMs must be an integer >= 1000')
  if (problems.length) {
    process.stderr.write(`live_story: bad configuration:\n  ${problems.join('\n  ')}\n`)
    process.exit(2)
  }
  return config
}

const config = readConfig()

// ---------------------------------------------------------------- helpers

class StoryFailure extends Error {}

function check (condition, what, details) {
  if (!condition) {
    throw new StoryFailure(details === undefined ? what : `${what}: ${JSON.stringify(details)}`)
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function until (predicate, what, timeoutMs = config.timeoutMs) {
  const start = Date.now()
  for (;;) {
    let value
    try { value = predicate() } catch { value = false }
    if (value) return Date.now() - start
    if (Date.now() - start > timeoutMs) throw new StoryFailure(`timed out (${timeoutMs} ms) waiting for ${what}`)
    await sleep(15)
  }
}

/** The request must fail with this error code. */
async function refused (promise, code, what) {
  try {
    const answer = await promise
    throw new StoryFailure(`${what}: expected error ${code}, got ${JSON.stringify(answer)}`)
  } catch (error) {
    if (error instanceof StoryFailure) throw error
    check(error instanceof LiveError, `${what}: a LiveError`, String(error))
    check(error.code === code, `${what}: error code`, { expected: code, got: error.code, key: error.key })
    return error
  }
}

const clients = new Map() // name → channel, for the diagnosis
const logs = new Map() // name → recorded events

/** A RoomChannel with a log of what it went through. */
function channel (name, token, room = config.room, options = {}) {
  const ch = new RoomChannel({
    url: config.url, room, token, WebSocketImpl: options.WebSocketImpl ?? WebSocket, ...options
  })
  const log = { states: [], arrivals: [], muted: [], presenceFrames: 0, errors: [], closed: [], hellos: [] }
  ch.addEventListener('state', (e) => log.states.push({ ...e.detail, at: Date.now() }))
  ch.addEventListener('message', (e) => log.arrivals.push({ id: e.detail.message.id, seq: e.detail.message.seq, isNew: e.detail.isNew }))
  ch.addEventListener('hello', (e) => log.hellos.push({ reconnect: e.detail.reconnect, changed: e.detail.changed.length, gap: e.detail.gap, lastSeq: e.detail.hello.last_seq }))
  ch.addEventListener('presence', (e) => { if (e.detail.frame) log.presenceFrames++ })
  ch.addEventListener('muted', (e) => log.muted.push(e.detail))
  ch.addEventListener('error', (e) => log.errors.push(String(e.detail.error?.code ?? e.detail.error)))
  ch.addEventListener('closed', (e) => log.closed.push(e.detail))
  clients.set(name, ch)
  logs.set(name, log)
  return ch
}

async function opened (ch, what) {
  ch.connect()
  await until(() => ch.state === 'open' || ch.state === 'closed', `${what} to open`)
  check(ch.state === 'open', `${what} opened`, { state: ch.state, closed: logs.get(nameOf(ch))?.closed })
  return ch
}

const nameOf = (ch) => [...clients].find(([, c]) => c === ch)?.[0]
const ids = (ch) => ch.ordered.map((m) => m.id)
const metaOf = (ch, user) => ch.presence.get(user)?.metas ?? []
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

// ---------------------------------------------------------------- the story

const phases = {}
let current = 'setup'

async function phase (name, body) {
  current = name
  const start = Date.now()
  const details = (await body()) ?? {}
  phases[name] = { ok: true, ms: Date.now() - start, ...details }
}

let s1, s2, teacher, S1, S2, T

async function story () {
  await phase('connect', async () => {
    s1 = await opened(channel('student1', config.tokens.student1), 'student 1')
    s2 = await opened(channel('student2', config.tokens.student2), 'student 2')
    teacher = await opened(channel('teacher', config.tokens.teacher), 'teacher')
    S1 = s1.hello.me.id
    S2 = s2.hello.me.id
    T = teacher.hello.me.id
    for (const ch of [s1, s2, teacher]) {
      check(ch.hello.v === 1, 'protocol version 1', ch.hello.v)
      check(ch.hello.room.id === config.room, 'hello names the room', ch.hello.room)
      check(ch.hello.access.chat === true, 'chat access', ch.hello.access)
      check(ch.hello.muted === false, 'nobody muted at first')
      check(typeof ch.hello.presence === 'object', 'hello carries presence')
      check(ch.hello.limits.message_chars === 2000 && ch.hello.limits.history === 50, 'limits', ch.hello.limits)
    }
    check(s1.hello.me.role === 'student' && s2.hello.me.role === 'student', 'two students')
    check(teacher.hello.me.role === 'teacher' && teacher.hello.access.moderate === true, 'teacher moderates', teacher.hello.access)
    check(s1.hello.access.moderate === false, 'students do not moderate')
    return { users: [S1, S2, T], room: s1.hello.room }
  })

  await phase('presence', async () => {
    const everyone = { [S1]: 1, [S2]: 1, [T]: 1 }
    const seesEveryone = (ch) => same(Object.entries(ch.online()).sort(), Object.entries(everyone).sort())
    const allPresentMs = await until(() => [s1, s2, teacher].every(seesEveryone), 'all three to see each other once')
    check(s2.presence.get(T).role === 'teacher' && s2.presence.get(S1).name === s1.hello.me.name, 'names and roles', s2.presence.get(T))

    // a second tab of student 1: one user, two metas
    const tab = await opened(channel('student1-tab2', config.tokens.student1), 'student 1, second tab')
    await until(() => [s2, teacher, s1, tab].every((ch) => metaOf(ch, S1).length === 2 && ch.presence.size === 3),
      'the second tab to show as a second meta of the same user')
    const conns = new Set(metaOf(teacher, S1).map((m) => m.conn))
    check(conns.size === 2, 'two distinct conns', [...conns])

    // typing travels (and the open doc with it)
    s2.setPresence({ doc: 'rapport', typing: true })
    const typingMs = await until(() => [s1, teacher, tab].every((ch) => {
      const [meta] = metaOf(ch, S2)
      return meta?.typing === true && meta.doc === 'rapport' && ch.typing().includes(S2)
    }), 'student 2 typing to be seen')
    check(metaOf(s1, S2).length === 1, 'a changed meta replaces the old one (leave + join)', metaOf(s1, S2))

    // a burst of updates is coalesced; the last one wins
    const sentBefore = s2.stats.presenceSent
    for (let i = 0; i < 40; i++) s2.setPresence({ typing: i % 2 === 0 })
    s2.setPresence({ typing: false })
    await until(() => [s1, teacher].every((ch) => metaOf(ch, S2)[0]?.typing === false && metaOf(ch, S2)[0]?.doc === 'rapport'),
      'the last of a burst of presence updates to be seen')
    const burstFrames = s2.stats.presenceSent - sentBefore
    check(burstFrames <= 2, 'a burst of 41 updates sends at most 2 frames', burstFrames)

    tab.close()
    await until(() => [s2, teacher, s1].every((ch) => metaOf(ch, S1).length === 1), 'the closed tab to leave')
    return { allPresentMs, typingSeenMs: typingMs, burstUpdates: 41, burstFramesSent: burstFrames, twoTabsMetas: 2 }
  })

  await phase('chat', async () => {
    const start = s1.lastSeq
    const texts = [
      [s1, 'Bonjour **groupe** !'],
      [s2, 'Salut *tout le monde*'],
      [teacher, 'Bienvenue : https://atelier.example/aide'],
      [s1, 'On commence par le `plan` ?'],
      [s2, 'Oui\nje prends la partie 2']
    ]
    // all at once: each channel must still end with one order, the seq order
    const oks = await Promise.all(texts.map(([ch, text]) => ch.post(text)))
    for (const ok of oks) check(ok.t === 'ok' && Number.isInteger(ok.id) && Number.isInteger(ok.seq), 'ok carries id and seq', ok)
    const posted = oks.map((ok) => ok.id)
    await until(() => [s1, s2, teacher].every((ch) => posted.every((id) => ch.messages.has(id))), 'every message to reach everyone')
    const orders = [s1, s2, teacher].map(ids)
    check(orders.every((o) => same(o, orders[0])), 'the same messages in the same order everywhere', orders)
    const seqs = s1.ordered.map((m) => m.seq)
    check(seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1), 'seqs without gaps', seqs)
    check(same(teacher.ordered.map((m) => m.text).slice(-5).sort(), texts.map(([, t]) => t).sort()), 'texts kept as sent', teacher.ordered.map((m) => m.text))
    for (const ok of oks) check(s2.messages.get(ok.id).seq === ok.seq, 'ok.seq is the message seq')
    for (const [name, ch] of [['student1', s1], ['student2', s2], ['teacher', teacher]]) {
      const news = logs.get(name).arrivals.filter((a) => a.isNew).map((a) => a.seq)
      check(news.every((s, i) => i === 0 ? s === start + 1 : s === news[i - 1] + 1), `${name} received new messages once each, in seq order`, news)
      check(new Set(ids(ch)).size === ch.ordered.length && ch.ordered.length === ch.messages.size, `${name} holds no duplicate`)
    }
    const authors = Object.fromEntries(oks.map((ok, i) => [ok.id, texts[i][0].hello.me.id]))
    for (const id of posted) check(teacher.messages.get(id).author.id === authors[id], 'author', teacher.messages.get(id).author)
    return { messages: posted.length, seqs: posted.map((id) => s1.messages.get(id).seq).sort((a, b) => a - b) }
  })

  await phase('editDelete', async () => {
    const mine = await s1.post('Brouillon')
    await until(() => [s2, teacher].every((ch) => ch.messages.has(mine.id)), 'the draft to arrive')
    await s1.edit(mine.id, 'Version **corrigée**')
    await until(() => [s1, s2, teacher].every((ch) => ch.messages.get(mine.id).version === 2), 'the edit to arrive')
    const edited = teacher.messages.get(mine.id)
    check(edited.text === 'Version **corrigée**' && edited.edited_at !== null && edited.seq === mine.seq, 'edited message', edited)

    await s1.remove(mine.id)
    await until(() => [s1, s2, teacher].every((ch) => ch.messages.get(mine.id).deleted), 'the deletion to arrive')
    const gone = s2.messages.get(mine.id)
    check(gone.text === '' && gone.deleted_by === S1 && gone.version === 3 && gone.seq === mine.seq, 'deleted message keeps its place, text erased', gone)
    check(ids(s2).includes(mine.id), 'a deleted message stays in the list')
    await refused(s1.remove(mine.id), 'not_found', 'deleting a deleted message')

    const theirs = s2.ordered.filter((m) => m.author.id === S2 && !m.deleted).at(-1)
    const forbidden = await refused(s1.remove(theirs.id), 'forbidden', "a student deleting another's message")
    check(forbidden.key === 'error.forbidden' && forbidden.messages.fr && forbidden.messages.en && forbidden.retryAfter === null && !forbidden.local,
      'the error carries key, both languages, retryAfter', { key: forbidden.key, messages: forbidden.messages, retryAfter: forbidden.retryAfter })
    await refused(s1.edit(theirs.id, 'piraté'), 'forbidden', "a student editing another's message")
    check(!teacher.messages.get(theirs.id).deleted, 'still there after the refusals')

    await teacher.remove(theirs.id)
    await until(() => [s1, s2, teacher].every((ch) => ch.messages.get(theirs.id).deleted), "the teacher's deletion to arrive")
    check(s1.messages.get(theirs.id).deleted_by === T, 'deleted by the teacher', s1.messages.get(theirs.id))

    await refused(s1.post('   \n  '), 'empty', 'an empty message')
    await refused(s1.post('x'.repeat(2001)), 'too_long', 'a message over 2000 characters')
    await refused(s1.edit(999999, 'x'), 'not_found', 'editing a message that does not exist')
    return { edited: mine.id, deletedByAuthor: mine.id, deletedByTeacher: theirs.id }
  })

  await phase('mute', async () => {
    await refused(s1.mute(S2), 'forbidden', 'a student muting')
    await teacher.mute(S2)
    await until(() => s2.muted === true, 'student 2 to learn they are muted')
    await until(() => logs.get('student1').muted.some((m) => m.user === S2 && m.muted && m.by === T), 'everyone to get `muted`')
    const seen = logs.get('student2').muted.at(-1)
    check(seen.me === true && seen.by === T, 'the muted event names me and the teacher', seen)
    const muted = await refused(s2.post('Je peux parler ?'), 'muted', 'a muted student posting')
    check(muted.key === 'error.muted', 'muted key', muted.key)
    check(s1.muted === false, 'only student 2 is muted')

    await teacher.unmute(S2)
    await until(() => s2.muted === false, 'student 2 to learn they are unmuted')
    const back = await s2.post('Merci !')
    await until(() => teacher.messages.has(back.id), 'the post after unmute to arrive')
    return { mutedEventsSeenByStudent1: logs.get('student1').muted.length }
  })

  await phase('parent', async () => {
    const parent = await opened(channel('parent', config.tokens.parent, config.classRoom), 'the parent')
    const classmate = await opened(channel('student1-class', config.tokens.student1, config.classRoom), 'student 1 in the class room')
    check(parent.hello.me.role === 'parent', 'a parent', parent.hello.me)
    check(parent.hello.access.chat === false, 'no chat for parents', parent.hello.access)
    check(parent.ordered.length === 0 && logs.get('parent').hellos[0].changed === 0, 'no history for parents', parent.ordered.length)
    check(parent.hello.presence === undefined && parent.presence.size === 0, 'no presence for parents', parent.hello.presence)
    await until(() => metaOf(classmate, S1).length === 1, 'student 1 to see themself in the class room')
    await refused(parent.post('Bonjour'), 'forbidden', 'a parent posting')
    const pong = await parent.ping()
    check(pong.t === 'pong', 'ping answers pong', pong)
    await sleep(200)
    check(logs.get('parent').presenceFrames === 0, 'the parent receives no presence frame', logs.get('parent').presenceFrames)
    check(!classmate.presence.has(parent.hello.me.id), 'nobody sees the parent', [...classmate.presence.keys()])
    parent.close()
    return { chat: parent.hello.access.chat, presenceFramesToParent: logs.get('parent').presenceFrames }
  })

  await phase('refusals', async () => {
    const out = {}
    const bad = channel('bad-token', 'not-a-jwt')
    bad.connect()
    await until(() => bad.state === 'closed', 'a bad token to be refused')
    check(logs.get('bad-token').closed[0]?.code === 4401, '4401 for a bad token', logs.get('bad-token').closed)
    out.badToken = { code: 4401, connects: bad.stats.connects }

    let asked = 0
    const fn = channel('token-fn', async () => { asked++; return 'still-not-a-jwt' }, config.room, { backoff: { initialMs: 50 } })
    fn.connect()
    await until(() => fn.state === 'closed', 'a failing token function to give up')
    check(asked === 2 && fn.stats.connects === 2, 'the token function is asked once more after 4401, then no more', { asked })
    check(logs.get('token-fn').closed[0]?.code === 4401, '4401 again', logs.get('token-fn').closed)
    out.tokenFunction = { code: 4401, tokenCalls: asked }

    const stranger = channel('other-group', config.tokens.student1, config.otherRoom)
    stranger.connect()
    await until(() => stranger.state === 'closed', "another group's room to be refused")
    check(logs.get('other-group').closed[0]?.code === 4403, '4403 for a room without access', logs.get('other-group').closed)
    out.otherRoom = { code: 4403, connects: stranger.stats.connects }

    await sleep(700) // no reconnection after a final close
    check(bad.stats.connects === 1 && stranger.stats.connects === 1 && fn.stats.connects === 2, 'no reconnection after a final close',
      [bad.stats.connects, stranger.stats.connects, fn.stats.connects])
    await refused(bad.post('x'), 'not_connected', 'a request on a closed channel')
    return out
  })

  await phase('reconnect', async () => {
    s1.setPresence({ doc: 'plan' })
    await until(() => metaOf(teacher, S1)[0]?.doc === 'plan', "student 1's open doc to be seen")
    const oldConn = metaOf(teacher, S1)[0].conn
    const before = ids(s1)
    const hellosBefore = s1.stats.hellos
    const log = logs.get('student1')
    const statesBefore = log.states.length

    const cutAt = Date.now()
    s1.socket.terminate() // a network drop: no close handshake
    const during = await s2.post('Pendant la coupure') // arrives while student 1 is away (or just back)
    await until(() => s1.state === 'open' && s1.stats.hellos === hellosBefore + 1, 'student 1 to reconnect')
    const reconnectMs = Date.now() - cutAt
    const transitions = log.states.slice(statesBefore)
    const reconnecting = transitions.find((s) => s.state === 'reconnecting')
    check(reconnecting && reconnecting.code === 1006, 'a drop is seen as 1006 and retried', transitions)
    check(reconnecting.delayMs >= 0 && reconnecting.delayMs <= s1.backoff.initialMs, 'first retry within the initial backoff (full jitter)', reconnecting.delayMs)

    await until(() => s1.messages.has(during.id), 'the message posted during the drop to reach student 1')
    const after = ids(s1)
    check(new Set(after).size === after.length && after.length === s1.messages.size, 'no duplicate after reconnect', after)
    check(before.every((id, i) => after[i] === id), 'the held history is kept in place', { before, after })
    check(same(after, ids(s2)), 'student 1 holds exactly what student 2 holds', { s1: after, s2: ids(s2) })
    const seqs = s1.ordered.map((m) => m.seq)
    check(seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1), 'seqs still contiguous', seqs)
    check(log.hellos.at(-1).reconnect === true && log.hellos.at(-1).gap === false, 'a reconnect hello without gap', log.hellos.at(-1))

    // presence: replaced by the new hello; one meta (the new conn); the open doc re-announced
    await until(() => [teacher, s2].every((ch) => metaOf(ch, S1).length === 1 && metaOf(ch, S1)[0].conn !== oldConn && metaOf(ch, S1)[0].doc === 'plan'),
      "the others to see student 1's new connection only, with its doc")
    await until(() => metaOf(s1, S1).length === 1 && s1.presence.size === 3, 'student 1 to see itself once')
    check(!metaOf(s1, S1).some((m) => m.conn === oldConn), 'no stale meta of the dropped connection in its own presence', metaOf(s1, S1))

    const again = await s1.post('Je suis de retour')
    await until(() => [s2, teacher].every((ch) => ch.messages.has(again.id)), 'a post after the reconnect to arrive')
    return { reconnectMs, retryDelayMs: reconnecting.delayMs, messagesHeld: after.length, reconnects: s1.stats.reconnects }
  })

  await phase('backoff', async () => {
    // connection attempts fail (connection refused) while `failures` > 0
    let failures = 0
    class FlakyWebSocket extends WebSocket {
      constructor (address, ...rest) {
        if (failures > 0) {
          failures--
          address = 'ws://127.0.0.1:9/unreachable'
        }
        super(address, ...rest)
      }
    }
    const backoff = { initialMs: 200, maxMs: 1000, factor: 2, jitter: 'full', stableMs: 1500 }
    const flaky = await opened(channel('flaky', config.tokens.student2, config.room, {
      WebSocketImpl: FlakyWebSocket, backoff, random: () => 0.999
    }), 'the flaky channel')
    const log = logs.get('flaky')
    const retries = () => log.states.filter((s) => s.state === 'reconnecting')

    failures = 3
    flaky.socket.terminate()
    await until(() => flaky.state === 'open' && flaky.stats.hellos === 2, 'the flaky channel to come back after 3 failed attempts')
    const delays = retries().map((s) => s.delayMs)
    check(delays.length === 4, 'one drop + three failed attempts = four retries', delays)
    const caps = [200, 400, 800, 1000]
    check(delays.every((d, i) => d <= caps[i] && d >= caps[i] * 0.9), 'delays grow exponentially up to the cap', { delays, caps })

    // dropped again at once: the backoff is not reset yet (the connection was not stable)
    flaky.socket.terminate()
    await until(() => flaky.state === 'open' && flaky.stats.hellos === 3, 'the flaky channel to come back (unstable)')
    const unstable = retries().at(-1).delayMs
    check(unstable >= 900, 'an unstable connection keeps the grown backoff', unstable)

    // stable long enough: the backoff starts over
    await sleep(backoff.stableMs + 100)
    flaky.socket.terminate()
    await until(() => flaky.state === 'open' && flaky.stats.hellos === 4, 'the flaky channel to come back (after a stable connection)')
    const reset = retries().at(-1).delayMs
    check(reset <= 200, 'a stable connection resets the backoff', reset)
    check(same(ids(flaky), ids(s2)), 'the flaky channel holds the same messages, once each', { flaky: ids(flaky), s2: ids(s2) })
    flaky.close()
    return { delaysMs: delays, unstableDelayMs: unstable, afterStableDelayMs: reset }
  })

  await phase('rateLimit', async () => {
    const classmate = clients.get('student1-class')
    const results = []
    for (let i = 0; i < 8; i++) {
      try {
        await classmate.post(`Rafale ${i}`)
        results.push('ok')
      } catch (error) {
        results.push(error)
        if (error.code === 'rate_limited') break
      }
    }
    const limited = results.at(-1)
    check(limited instanceof LiveError && limited.code === 'rate_limited' && !limited.local, 'a burst ends in rate_limited', results.map(String))
    check(typeof limited.retryAfter === 'number' && limited.retryAfter > 0, 'with retry_after', limited.retryAfter)
    const accepted = results.filter((r) => r === 'ok').length
    check(accepted >= 4 && accepted <= 6, 'about a burst (5) accepted first', accepted)
    const framesBefore = classmate.stats.framesOut
    const held = await refused(classmate.post('Encore'), 'rate_limited', 'a post before retry_after')
    check(held.local === true && held.retryAfter > 0 && held.retryAfter <= limited.retryAfter, 'held back locally, with the time left', { local: held.local, retryAfter: held.retryAfter })
    check(classmate.stats.framesOut === framesBefore, 'nothing sent while held back')
    classmate.close()
    return { accepted, retryAfter: limited.retryAfter, heldLocally: true }
  })

  await phase('close', async () => {
    for (const ch of [s1, s2, teacher]) {
      ch.close()
      check(ch.state === 'closed', 'closed at once')
      await refused(ch.ping(), 'not_connected', 'a request after close')
    }
    const closed = logs.get('teacher').closed
    check(closed.length === 1 && closed[0].code === 1000, 'a `closed` event with 1000', closed)
    await sleep(300)
    check([s1, s2, teacher].every((ch) => ch.state === 'closed' && ch.socket === null), 'no reconnection after close()')
    return {}
  })
}

// ---------------------------------------------------------------- run

const timer = setTimeout(() => {
  process.stderr.write(`live_story: phase ${current} hung\n`)
  process.exit(1)
}, 120000)

try {
  await story()
  clearTimeout(timer)
  process.stdout.write(JSON.stringify({ ok: true, phases, clients: clients.size }, null, 2) + '\n')
  process.exit(0)
} catch (error) {
  clearTimeout(timer)
  const diagnosis = {}
  for (const [name, ch] of clients) {
    const log = logs.get(name)
    diagnosis[name] = {
      state: ch.state,
      me: ch.hello?.me?.id,
      stats: ch.stats,
      messages: ch.ordered.map((m) => `${m.seq}:${m.id}:v${m.version}${m.deleted ? ':deleted' : ''}`),
      online: ch.online(),
      states: log.states.map((s) => `${s.state}${s.code ? `(${s.code})` : ''}${s.delayMs !== undefined ? `+${s.delayMs}ms` : ''}`),
      closed: log.closed,
      errors: log.errors
    }
  }
  process.stderr.write(`live_story: phase ${current} failed: ${error.stack ?? error}\n` +
    `passed: ${Object.keys(phases).join(', ') || 'none'}\n${JSON.stringify(diagnosis, null, 2)}\n`)
  process.exit(1)
}
