#!/usr/bin/env node
// A stock provider sends a burst far over the server's frame rate: every edit must arrive.
//
// A writer (yjs + y-websocket) types `edits` characters, one transaction (one update
// frame) each, all at once; an observer provider on the same doc waits until its text is
// the writer's. The server slows the writer (it stops reading its socket) but must not
// close it. Last stdout line: {length, same, writerCloses, observerCloses, ms}.
//
// Config (JSON in env INTEROP_CONFIG): url, room, doc, writerToken, observerToken,
// edits (default 2000), timeoutMs (default 60000).

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const config = { edits: 2000, timeoutMs: 60000, ...JSON.parse(process.env.INTEROP_CONFIG) }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function join (token) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(config.url, `${config.room}/${config.doc}`, doc, {
    params: { token },
    WebSocketPolyfill: WebSocket,
    disableBc: true
  })
  const closes = []
  provider.on('connection-close', (event) => closes.push(event?.code ?? null))
  return { doc, text: doc.getText('content'), provider, closes }
}

async function waitUntil (condition) {
  const deadline = Date.now() + config.timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) return false
    await sleep(20)
  }
  return true
}

const writer = join(config.writerToken)
const observer = join(config.observerToken)
await waitUntil(() => writer.provider.synced && observer.provider.synced)
const letters = 'abcdefghijklmnopqrstuvwxyz '
const t0 = Date.now()
for (let i = 0; i < config.edits; i++) writer.text.insert(i, letters[i % 27]) // one frame each
await waitUntil(() => observer.text.length >= config.edits)
const report = {
  length: observer.text.length,
  same: observer.text.toString() === writer.text.toString(),
  writerCloses: [...writer.closes],
  observerCloses: [...observer.closes],
  ms: Date.now() - t0
}
writer.provider.destroy()
observer.provider.destroy()
process.stdout.write(JSON.stringify(report) + '\n')
process.exit(0)
