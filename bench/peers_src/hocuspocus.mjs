#!/usr/bin/env node
// A Hocuspocus server as a user would start one, for the benchmark. Any document name is
// accepted and no token is checked (no onAuthenticate hook).
//
// Env: HOST (127.0.0.1), PORT (0: any free port; the chosen one is printed as "listening PORT")
//      SQLITE_PATH   set: @hocuspocus/extension-sqlite stores the docs there (Hocuspocus
//                    stores the whole document, debounced: 2 s, at most 10 s late)
//      REDIS_URL     set (redis://host:port): @hocuspocus/extension-redis, several nodes
//      REDIS_PREFIX  key/channel prefix on Redis (distinct per run); NODE_ID its identifier
// Run from bench/peers/node (where the packages are installed): node ../../peers_src/hocuspocus.mjs
import { createRequire } from 'node:module'
import path from 'node:path'

// resolve the packages from bench/peers/node, whatever the cwd
const require = createRequire(path.resolve(process.env.PEERS_NODE_DIR || process.cwd(), 'package.json'))
const { Server } = await import(require.resolve('@hocuspocus/server'))

const extensions = []
if (process.env.SQLITE_PATH) {
  const { SQLite } = await import(require.resolve('@hocuspocus/extension-sqlite'))
  extensions.push(new SQLite({ database: process.env.SQLITE_PATH }))
}
if (process.env.REDIS_URL) {
  const { Redis } = await import(require.resolve('@hocuspocus/extension-redis'))
  const u = new URL(process.env.REDIS_URL)
  extensions.push(new Redis({
    host: u.hostname,
    port: Number(u.port || 6379),
    prefix: process.env.REDIS_PREFIX || 'hocuspocus-bench',
    identifier: process.env.NODE_ID || `hp-${process.pid}`
  }))
}

const server = new Server({
  address: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 0),
  quiet: true,
  extensions
})
await server.listen()
process.stdout.write(`listening ${server.address.port}\n`)
const stop = async () => { await server.destroy(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
