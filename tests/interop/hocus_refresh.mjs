#!/usr/bin/env node
// Token refresh over /collab with the stock @hocuspocus/provider: the server asks for a
// fresh token before the doc's expires (Auth Token request); the provider calls its
// `token` function and sends it.
//
//   renewed  a provider whose token function hands out the next token of its list: it
//            is asked, answers, and its doc lives past the first token's expiry (an edit
//            typed then reaches a y-websocket reader)
//   expired  a provider that only ever has its first, short token: asked, it sends the
//            same one again, and at expiry the doc is closed with PermissionDenied
//
// Config (INTEROP_CONFIG): collabUrl, yjsUrl, provider, doc, renewTokens [short, long],
// staleToken (short), readerToken, expireMs (when the short tokens expire), timeoutMs.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const cfg = JSON.parse(process.env.INTEROP_CONFIG || '{}')
const { HocuspocusProvider, HocuspocusProviderWebsocket } = await import(cfg.provider || '@hocuspocus/provider')
const report = { provider: cfg.provider }
const fail = (why) => { process.stderr.write(`hocus_refresh: ${why}\n${JSON.stringify(report)}\n`); process.exit(1) }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function waitUntil (what, condition, ms = cfg.timeoutMs || 15000) {
  const start = Date.now()
  while (!condition()) {
    if (Date.now() - start > ms) fail(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

function open (name, tokenFn) {
  const state = { asked: 0, failed: null, synced: false, scopes: [] }
  const socket = new HocuspocusProviderWebsocket({ url: cfg.collabUrl, WebSocketPolyfill: WebSocket })
  state.provider = new HocuspocusProvider({
    websocketProvider: socket,
    name,
    token: () => { state.asked += 1; return tokenFn(state.asked) },
    onAuthenticated: ({ scope }) => state.scopes.push(scope),
    onAuthenticationFailed: ({ reason }) => { state.failed = reason },
    onSynced: () => { state.synced = true }
  })
  state.provider.attach()
  state.socket = socket
  return state
}

const name = `2nde-a-g1/${cfg.doc}`
const renewed = open(name, (n) => cfg.renewTokens[Math.min(n - 1, 1)])
const stale = open(name, () => cfg.staleToken)
await waitUntil('both synced', () => renewed.synced && stale.synced)
await waitUntil('the server asks for fresh tokens', () => renewed.asked >= 2 && stale.asked >= 2)
await waitUntil('the stale doc closed at expiry', () => stale.failed !== null, cfg.expireMs + 5000)
report.stale = { asked: stale.asked, reason: stale.failed }

const ydoc = new Y.Doc()
const reader = new WebsocketProvider(cfg.yjsUrl, name, ydoc, { WebSocketPolyfill: WebSocket, params: { token: cfg.readerToken }, disableBc: true })
await waitUntil('reader synced', () => reader.synced)
renewed.provider.document.getText('content').insert(0, 'après le renouvellement')
await waitUntil('the renewed doc still writes', () => ydoc.getText('content').toString() === 'après le renouvellement')
if (renewed.failed !== null) fail(`the renewed doc was refused: ${renewed.failed}`)
report.renewed = { asked: renewed.asked, scopes: renewed.scopes, failed: renewed.failed }
report.ok = true
process.stdout.write(JSON.stringify(report) + '\n')
process.exit(0)
