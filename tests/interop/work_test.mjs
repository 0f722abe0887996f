// The pure helpers of the assignment screens (client_demo/src/work.js and the resource
// parser of screens/assignments.js): dates typed in the viewer's zone and sent with their
// offset, time left before a due date, resource lines.
//
//   node --test tests/interop/work_test.mjs     (after `npm ci --prefix client_demo`)

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isoFromInput, leftText, localInput } from '../../client_demo/src/work.js'
import { parseResources } from '../../client_demo/src/screens/assignments.js'

test('a datetime-local value is read in the viewer\'s zone and sent as an instant', () => {
  const at = Date.UTC(2026, 11, 4, 17, 0, 0) / 1000
  const typed = localInput(at)
  assert.match(typed, /^\d{4}-\d\d-\d\dT\d\d:\d\d$/)
  assert.equal(new Date(isoFromInput(typed)).getTime() / 1000, at)
  assert.equal(isoFromInput('not a date'), null)
  assert.equal(isoFromInput(''), null)
})

test('time left is said in minutes, hours, then days, and past due once passed', () => {
  const now = 1_000_000
  assert.equal(leftText(now - 1, now), 'échéance passée')
  assert.equal(leftText(now + 30, now), 'encore 1 min')
  assert.equal(leftText(now + 1800, now), 'encore 30 min')
  assert.equal(leftText(now + 5 * 3600, now), 'encore 5 h')
  assert.equal(leftText(now + 5 * 86400, now), 'encore 5 jours')
})

test('resources: "Title | url" or a bare url per line, blank lines skipped', () => {
  assert.deepEqual(parseResources('Manuel, chapitre 3 | https://example.org/m\n\n  https://example.org/b  \nA | B | https://x.example/c'), [
    { title: 'Manuel, chapitre 3', url: 'https://example.org/m' },
    { title: 'https://example.org/b', url: 'https://example.org/b' },
    { title: 'A | B', url: 'https://x.example/c' }
  ])
  assert.deepEqual(parseResources(''), [])
})
