#!/usr/bin/env node
// A trivial y-websocket-shaped relay: the floor any real server sits above. It keeps no
// document. On connect it sends sync step 1 with an empty state vector; it answers a
// client's step 1 with an empty step 2; it drops the clients' step 2 (the whole doc,
// which it does not keep); every other frame (updates, awareness) is relayed as is to
// the other sockets of the same URL path. Used to show the load generator's own ceiling.
//
// Usage: node relay.mjs [--port 0] [--host 127.0.0.1]   prints "listening PORT" on stdout.

import { WebSocketServer } from 'ws'

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : dflt
}
const port = Number(arg('port', '0'))
const host = arg('host', '127.0.0.1')

const STEP1_EMPTY = Uint8Array.of(0, 0, 1, 0) // sync, step 1, state vector [0]
const STEP2_EMPTY = Uint8Array.of(0, 1, 2, 0, 0) // sync, step 2, update [0, 0]
const paths = new Map() // path -> Set<ws>

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
wss.on('connection', (ws, req) => {
  const path = (req.url || '/').split('?')[0]
  let peers = paths.get(path)
  if (!peers) paths.set(path, (peers = new Set()))
  peers.add(ws)
  ws.send(STEP1_EMPTY)
  ws.on('message', (data, isBinary) => {
    if (!isBinary) return ws.close(4400, 'text frame')
    if (data[0] === 0 && data[1] === 0) return ws.send(STEP2_EMPTY)
    if (data[0] === 0 && data[1] === 1) return
    for (const other of peers) if (other !== ws && other.readyState === 1) other.send(data)
  })
  ws.on('close', () => {
    peers.delete(ws)
    if (peers.size === 0) paths.delete(path)
  })
  ws.on('error', () => {})
})
wss.on('listening', () => process.stdout.write(`listening ${wss.address().port}\n`))
process.on('SIGTERM', () => { wss.close(); process.exit(0) })
