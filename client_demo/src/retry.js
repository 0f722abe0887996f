// The server's "come back later" (docs/protocol.md, close codes): a node at its admission
// limit closes a socket 1013 with a reason carrying `retry_after=<seconds>`. The client
// waits that long instead of its own backoff, times a random 1–1.3 so that the clients a
// node refused together do not return together.

const RETRY_AFTER = /(?:^|[\s;,])retry_after=(\d+(?:\.\d+)?)(?:$|[\s;,])/

/** Milliseconds to wait before reconnecting after this close, or null (use the backoff). */
export function retryAfterMs (code, reason, random = Math.random) {
  if (code !== 1013) return null
  const m = RETRY_AFTER.exec(String(reason ?? ''))
  if (!m) return null
  const seconds = Math.min(Number(m[1]), 300) // a bound against a broken server
  return Math.round(seconds * 1000 * (1 + 0.3 * random()))
}
