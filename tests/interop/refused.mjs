#!/usr/bin/env node
// How does a server refuse a connection, as a stock client sees it?
//
//   1. raw:      a plain `ws` socket opens the provider's URL, sends sync step 1 and records
//                what comes back: HTTP status if the upgrade is refused, messages (an auth
//                "permission denied" and its reason), the close code and reason.
//   2. provider: a stock y-websocket WebsocketProvider is run for --observe-ms: how many
//                times it connected, the close codes it saw, whether it gave up reconnecting
//                (y-websocket 3.1 stops on 4400-4499 and emits `closed`) or keeps trying.
//
// Configuration: JSON in env INTEROP_CONFIG and/or flags (flags win):
//   --url ws://127.0.0.1:8000/yjs --room 2nde-a-g1 --doc rapport --token T
//   --observe-ms 3000 --timeout-ms 10000 --expect-code 4403
// Prints a JSON report on stdout. Exit 0, or 1 when --expect-code is given and the server
// closed with another code (or not at all); 2 on bad configuration. The token is never printed.

import { parseArgs } from 'node:util'
import * as Y from 'yjs'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import * as syncProtocol from 'y-protocols/sync'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import WebSocket from 'ws'

function readConfig () {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      room: { type: 'string' },
      doc: { type: 'string' },
      token: { type: 'string' },
      'observe-ms': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'expect-code': { type: 'string' }
    }
  })
  const fromEnv = process.env.INTEROP_CONFIG ? JSON.parse(process.env.INTEROP_CONFIG) : {}
  const pick = (flag, key, fallback) => values[flag] ?? fromEnv[key] ?? fallback
  const config = {
    url: pick('url', 'url'),
    room: pick('room', 'room'),
    doc: pick('doc', 'doc'),
    token: pick('token', 'token', ''),
    observeMs: Number(pick('observe-ms', 'observeMs', 3000)),
    timeoutMs: Number(pick('timeout-ms', 'timeoutMs', 10000)),
    expectCode: pick('expect-code', 'expectCode', null)
  }
  if (config.expectCode !== null) config.expectCode = Number(config.expectCode)
  if (!config.url || !config.room || !config.doc) {
    process.stderr.write('refused: bad configuration: url, room and doc are required\n')
    process.exit(2)
  }
  return config
}

const MESSAGE_NAMES = ['sync', 'awareness', 'auth', 'query-awareness']
const SYNC_NAMES = ['sync-step1', 'sync-step2', 'sync-update']

// 1. A plain socket: everything the server says, then how it closes.
function observeRaw (config) {
  const query = config.token ? `?token=${encodeURIComponent(config.token)}` : ''
  const url = `${config.url}/${config.room}/${config.doc}${query}`
  const seen = { opened: false, error: null, httpStatus: null, messages: [], authDenied: null, closeCode: null, closeReason: null, timedOut: false }
  return new Promise((resolve) => {
    const socket = new WebSocket(url)
    const done = () => { clearTimeout(timer); resolve(seen) }
    const timer = setTimeout(() => { seen.timedOut = true; socket.terminate(); done() }, config.timeoutMs)
    socket.binaryType = 'arraybuffer'
    socket.on('unexpected-response', (_request, response) => {
      seen.httpStatus = response.statusCode
      socket.terminate()
      done()
    })
    socket.on('error', (error) => { seen.error ??= error.message }) // the close event follows
    socket.on('open', () => {
      seen.opened = true
      const encoder = encoding.createEncoder()
      encoding.writeVarUint(encoder, 0) // sync
      syncProtocol.writeSyncStep1(encoder, new Y.Doc())
      socket.send(encoding.toUint8Array(encoder))
    })
    socket.on('message', (data) => {
      const decoder = decoding.createDecoder(new Uint8Array(data))
      const type = decoding.readVarUint(decoder)
      if (type === 0) {
        seen.messages.push(SYNC_NAMES[decoding.readVarUint(decoder)] ?? 'sync-unknown')
      } else if (type === messageAuth) {
        const authType = decoding.readVarUint(decoder)
        if (authType === 0) seen.authDenied = decoding.readVarString(decoder)
        seen.messages.push(authType === 0 ? 'auth-permission-denied' : `auth-${authType}`)
      } else {
        seen.messages.push(MESSAGE_NAMES[type] ?? `unknown-${type}`)
      }
    })
    socket.on('close', (code, reason) => {
      seen.closeCode = code
      seen.closeReason = reason.toString()
      done()
    })
  })
}

// 2. The stock provider: does it give up, or hammer the server?
async function observeProvider (config) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(config.url, `${config.room}/${config.doc}`, doc, {
    params: config.token ? { token: config.token } : {},
    WebSocketPolyfill: WebSocket,
    disableBc: true
  })
  const seen = { attempts: 0, closeCodes: [], closedEvent: null, permissionDenied: null, everSynced: false }
  provider.on('status', ({ status }) => { if (status === 'connecting') seen.attempts++ })
  provider.on('connection-close', (event) => { seen.closeCodes.push(event ? event.code : null) })
  provider.on('closed', ({ code, reason }) => { seen.closedEvent = { code, reason } })
  provider.on('synced', (state) => { if (state) seen.everSynced = true })
  // The stock auth handler only console.warn()s the reason, with the provider's URL, token
  // included: record the reason instead, so that no token ends up in a test log.
  provider.messageHandlers[messageAuth] = (_encoder, decoder) => {
    if (decoding.readVarUint(decoder) === 0) seen.permissionDenied = decoding.readVarString(decoder)
  }
  // `connecting` was emitted inside the constructor, before our listener existed.
  seen.attempts++
  await new Promise((resolve) => setTimeout(resolve, config.observeMs))
  seen.stoppedReconnecting = !provider.shouldConnect && provider.ws === null
  provider.destroy()
  provider.awareness.destroy()
  doc.destroy()
  return seen
}

const config = readConfig()
const report = {
  server: config.url,
  room: config.room,
  doc: config.doc,
  raw: await observeRaw(config),
  provider: await observeProvider(config)
}
process.stdout.write(JSON.stringify(report, null, 2) + '\n')
if (config.expectCode !== null && report.raw.closeCode !== config.expectCode) {
  const got = report.raw.httpStatus !== null
    ? `the upgrade was refused with HTTP ${report.raw.httpStatus}`
    : report.raw.timedOut ? `the connection stayed open for ${config.timeoutMs} ms` : `close ${report.raw.closeCode} "${report.raw.closeReason}"`
  process.stderr.write(`refused: expected close ${config.expectCode}, but ${got}\n`)
  process.exit(1)
}
process.exit(0)
