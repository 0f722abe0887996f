#!/usr/bin/env node
// A stock y-websocket provider writes past the server's document size limit.
//
// The writer and a reader join one doc; the writer types a little (accepted), then a
// block past the limit, then a little more. The server answers each refused write with
// the y-protocols auth message "permission denied" and its reason, and keeps the socket
// open: the writer stays connected (a reader from then on), the reader never receives
// the refused text. Prints a JSON report on stdout.
//
// Config (JSON in env INTEROP_CONFIG): url, room, doc, writerToken, readerToken,
// bigChars (default 8000), timeoutMs (default 15000). Tokens are never printed.

import * as Y from 'yjs'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import * as authProtocol from 'y-protocols/auth'
import WebSocket from 'ws'

const config = { bigChars: 8000, timeoutMs: 15000, ...JSON.parse(process.env.INTEROP_CONFIG) }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
setTimeout(() => { process.stderr.write('too_large: hard time limit\n'); process.exit(1) }, 3 * config.timeoutMs)

async function waitUntil (what, condition) {
  const deadline = Date.now() + config.timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) { process.stderr.write(`too_large: timed out: ${what}\n`); process.exit(1) }
    await sleep(50)
  }
}

function join (token) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(config.url, `${config.room}/${config.doc}`, doc, {
    params: { token }, WebSocketPolyfill: WebSocket, disableBc: true
  })
  const entry = { doc, text: doc.getText('content'), provider, denied: [], closes: [] }
  // The stock handler console-logs provider.url, which carries the token: record instead.
  provider.messageHandlers[messageAuth] = (_encoder, decoder) => {
    authProtocol.readAuthMessage(decoder, doc, (_ydoc, reason) => entry.denied.push(reason))
  }
  provider.on('connection-close', (event) => entry.closes.push(event?.code ?? null))
  return entry
}

const writer = join(config.writerToken)
const reader = join(config.readerToken)
await waitUntil('both synced', () => writer.provider.synced && reader.provider.synced)
writer.text.insert(0, 'accepté ')
await waitUntil('the first edit reaches the reader', () => reader.text.toString() === 'accepté ')
writer.text.insert(writer.text.length, 'x'.repeat(config.bigChars))
await waitUntil('the refusal', () => writer.denied.length >= 1)
writer.text.insert(0, 'encore ')
await waitUntil('the second refusal', () => writer.denied.length >= 2)
await sleep(500)
const report = {
  denied: [...writer.denied],
  writerConnected: writer.provider.wsconnected,
  writerCloses: [...writer.closes], // a copy: destroy() below closes the sockets
  readerText: reader.text.toString(),
  writerLength: writer.text.length
}
writer.provider.destroy()
reader.provider.destroy()
process.stdout.write(JSON.stringify(report) + '\n')
process.exit(0)
