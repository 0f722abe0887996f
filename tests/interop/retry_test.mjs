// The server's retry delay as the web client reads it: client_demo/src/retry.js.
//
//   node --test tests/interop/retry_test.mjs

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { retryAfterMs } from '../../client_demo/src/retry.js'

test('a 1013 carrying retry_after waits that long, times 1 to 1.3', () => {
  assert.equal(retryAfterMs(1013, 'server busy; retry_after=2.5', () => 0), 2500)
  assert.equal(retryAfterMs(1013, 'server busy; retry_after=2.5', () => 1), 3250)
  assert.equal(retryAfterMs(1013, 'retry_after=12', () => 0.5), 13800)
})

test('anything else is left to the backoff', () => {
  assert.equal(retryAfterMs(1013, 'node at capacity, try again later'), null)
  assert.equal(retryAfterMs(1012, 'server busy; retry_after=2.5'), null)
  assert.equal(retryAfterMs(1006, ''), null)
  assert.equal(retryAfterMs(1013, undefined), null)
  assert.equal(retryAfterMs(1013, 'server busy; retry_after=abc'), null)
  assert.equal(retryAfterMs(1013, 'xretry_after=3'), null)
})

test('a broken server cannot hold a client away for ever', () => {
  assert.equal(retryAfterMs(1013, 'retry_after=100000', () => 0), 300000)
})
