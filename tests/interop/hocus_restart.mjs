#!/usr/bin/env node
// The server restarts under a stock @hocuspocus/provider with offline edits.
//
//   1. two docs open over one socket; a few words typed in each, acknowledged
//      (SyncStatus) — prints {"step":"typed"} and waits for a line on stdin
//   2. (the test stops the server) the provider sees the socket close; more words are
//      typed offline — prints {"step":"offline"} and waits for a line on stdin
//   3. (the test starts the server again on the same port) the provider reconnects by
//      itself, authenticates both docs again and syncs; the offline words are acknowledged
//      and a y-websocket reader sees every word of both docs — prints the report
//
// Config (INTEROP_CONFIG): collabUrl, yjsUrl, provider, doc, token, readerToken, timeoutMs.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import readline from 'node:readline'

const cfg = JSON.parse(process.env.INTEROP_CONFIG || '{}')
const { HocuspocusProvider, HocuspocusProviderWebsocket } = await import(cfg.provider || '@hocuspocus/provider')
const fail = (why) => { process.stderr.write(`hocus_restart: ${why}\n`); process.exit(1) }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function waitUntil (what, condition) {
  const start = Date.now()
  while (!condition()) {
    if (Date.now() - start > (cfg.timeoutMs || 20000)) fail(`timed out waiting for ${what}`)
    await sleep(20)
  }
}
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const step = async (name) => { process.stdout.write(JSON.stringify({ step: name }) + '\n'); await lines.next() }

let opened = 0
class CountingWebSocket extends WebSocket { constructor (...a) { super(...a); opened += 1 } }
const socket = new HocuspocusProviderWebsocket({ url: cfg.collabUrl, WebSocketPolyfill: CountingWebSocket })
let closes = 0
socket.on('close', () => { closes += 1 })
const docs = ['a', 'b'].map((suffix) => {
  const state = { name: `2nde-a-g1/${cfg.doc}-${suffix}`, synced: 0 }
  state.provider = new HocuspocusProvider({
    websocketProvider: socket, name: state.name, token: cfg.token, onSynced: () => { state.synced += 1 }
  })
  state.provider.attach()
  state.text = state.provider.document.getText('content')
  return state
})
await waitUntil('synced', () => docs.every((d) => d.synced >= 1))
for (const d of docs) d.text.insert(0, `[en ligne ${d.name.slice(-1)}]`)
await waitUntil('acknowledged', () => docs.every((d) => !d.provider.hasUnsyncedChanges))
await step('typed')

await waitUntil('the socket closed', () => closes >= 1)
for (const d of docs) d.text.insert(d.text.length, `[hors ligne ${d.name.slice(-1)}]`)
await step('offline')

await waitUntil('synced again', () => docs.every((d) => d.synced >= 2 || (d.provider.isSynced && opened >= 2)))
await waitUntil('offline edits acknowledged', () => docs.every((d) => !d.provider.hasUnsyncedChanges))
const seen = []
for (const d of docs) {
  const ydoc = new Y.Doc()
  const reader = new WebsocketProvider(cfg.yjsUrl, d.name, ydoc, { WebSocketPolyfill: WebSocket, params: { token: cfg.readerToken }, disableBc: true })
  await waitUntil('reader synced', () => reader.synced)
  seen.push(ydoc.getText('content').toString())
  reader.destroy()
}
process.stdout.write(JSON.stringify({ step: 'done', ok: true, socketsOpened: opened, texts: seen, local: docs.map((d) => d.text.toString()) }) + '\n')
process.exit(0)
