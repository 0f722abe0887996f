// A node at its admission limit, as a pupil meets it in a real browser (started by
// tests/browser/test_busy_client.py with BROWSER_CONFIG and `holdToken`): the node admits
// one socket at a time (ATELIER_ADMISSION_SLOTS=1) and closes a socket that waited
// ATELIER_ADMISSION_MAX_WAIT_S in line with 1013 "server busy; retry_after=N". The one
// slot is held by a socket whose ENT token names a key the ENT is slow to serve (the test's
// JWKS server answers its second request after a few seconds). The page's doc socket is
// told to come back later, waits what it was told (not its own backoff), and gets in.

import { assert, config, consoleProblems, docText, run, scenario, signInDemo, typeInEditor, waitSaved } from './helpers.mjs'

async function main () {
  await scenario('busy_node_retry_after', async () => {
    const lea = await signInDemo('s-01')
    const { page } = lea
    // Hold the node's one admission slot: the socket is admitted (open), then waits on
    // the ENT's keys.
    await page.evaluate((token) => new Promise((resolve, reject) => {
      const url = location.origin.replace(/^http/, 'ws') + '/yjs/2nde-a-g1/hold?token=' + token
      const ws = new WebSocket(url)
      window.__hold = { ws, closed: null }
      ws.onopen = () => resolve()
      ws.onclose = (e) => { window.__hold.closed = e.code; reject(new Error(`hold closed ${e.code}`)) }
    }), config.holdToken)
    await page.evaluate(() => { location.hash = '#/room/2nde-a-g1' })
    await page.locator('#editor .doc-text').waitFor()
    // Told to come back later: the page says it is reconnecting, then gets in by itself.
    await page.locator('#conn-state[data-state="online"]').waitFor({ timeout: 30000 })
    const seen = await page.evaluate(() => {
      const s = window.__atelier.current.docSession()
      return { honoured: s.retryAfterHonoured ?? 0, lastDelay: s.lastDelay, hold: window.__hold.closed }
    })
    assert(seen.honoured >= 1, `the page never waited a retry_after: ${JSON.stringify(seen)}`)
    // The node asked for at least ATELIER_ADMISSION_RETRY_MIN_S (1 s); the page adds up to 30 %.
    assert(seen.lastDelay >= 1000 && seen.lastDelay <= 2 * 1300, `waited ${seen.lastDelay} ms`)
    assert(seen.hold === 4401, `the held socket ended with ${seen.hold}, not 4401 (unknown key)`)
    // And the doc works as usual.
    await typeInEditor(page, 'Après la cohue.')
    await waitSaved(page)
    assert((await docText(page)).includes('Après la cohue.'), 'typed text not in the doc')
    await lea.context.close()
  })

  await scenario('no_token_in_console', async () => {
    assert(consoleProblems.length === 0, consoleProblems.join('\n'))
  })
}

run(main)
