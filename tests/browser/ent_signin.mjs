// Sign-in through the ENT in a real browser: Atelier with OIDC on and demo mode off, a
// real OpenID provider (tests/interop/oidc_provider.mjs, its development login page).
// Started by tests/browser/test_ent_signin.py; BROWSER_CONFIG adds {issuer} to the usual
// keys (helpers.mjs). Two students sign in on the provider's own page, co-edit their
// group's doc, get their socket tokens renewed, and one signs out: her token is refused.

import {
  BASE, assert, axe, browser, consoleProblems, docText, newPerson, openRoom, run, scenario,
  shot, typeInEditor, waitSaved, config
} from './helpers.mjs'

const ROOM = '2nde-a-g1'

/** Through the provider's login page, as a student would. */
async function signInWithEnt (userId, start = '/') {
  const person = await newPerson(userId)
  const { page } = person
  await page.goto(BASE + start)
  await page.getByRole('heading', { level: 1, name: 'Connexion' }).waitFor()
  await page.getByRole('link', { name: "Se connecter avec l'ENT" }).click()
  await page.waitForURL((url) => url.href.startsWith(config.issuer))
  await page.locator('input[name="login"]').fill(userId)
  await page.locator('input[name="password"]').fill('motdepasse')
  await page.locator('button[type="submit"]').click()
  await page.waitForURL((url) => url.href.startsWith(BASE))
  return person
}

function stored (page) {
  return page.evaluate(() => JSON.parse(sessionStorage.getItem('atelier.session') || 'null'))
}

async function main () {
  let lea, hugo

  await scenario('ent_signin', async () => {
    // A deep link while signed out: the sign-in screen, then back to that room.
    const person = await newPerson('signin-screen')
    await person.page.goto(BASE + `/#/room/${ROOM}`)
    await person.page.getByRole('heading', { level: 1, name: 'Connexion' }).waitFor()
    assert(await person.page.locator('#demo-user').count() === 0, 'no demo sign-in')
    const href = await person.page.locator('#ent-signin').getAttribute('href')
    assert(href === `/auth/login?next=${encodeURIComponent(`/#/room/${ROOM}`)}`, `link keeps the room: ${href}`)
    await axe(person.page, 'signin (ENT)')
    await shot(person.page, '14-connexion-ent')
    await person.context.close()

    lea = await signInWithEnt('s-01', `/#/room/${ROOM}`)
    await lea.page.locator('#editor .doc-text').waitFor()
    await lea.page.locator('#conn-state[data-state="online"]').waitFor()
    assert(new URL(lea.page.url()).hash === `#/room/${ROOM}`, `landed on the room: ${lea.page.url()}`)
    const kept = await stored(lea.page)
    assert(kept?.ent && kept.me?.id === 's-01' && typeof kept.token === 'string', 'an ENT session in this tab')
    assert(!(await lea.page.evaluate(() => document.cookie)).includes('atelier_session'), 'the session cookie is HttpOnly')
    const cookies = await lea.context.cookies(BASE)
    const cookie = cookies.find((c) => c.name === 'atelier_session')
    assert(cookie?.httpOnly && cookie.sameSite === 'Lax' && cookie.path === '/', `cookie flags: ${JSON.stringify(cookie)}`)

    hugo = await signInWithEnt('s-02')
    await hugo.page.getByRole('heading', { level: 1, name: 'Mes espaces' }).waitFor()
    await hugo.page.locator('.whoami', { hasText: 'Hugo' }).waitFor()
  })

  await scenario('ent_coedit', async () => {
    await openRoom(hugo.page, ROOM)
    await typeInEditor(lea.page, 'Léa, connectée par l’ENT.')
    await hugo.page.locator('#editor .doc-text', { hasText: 'Léa, connectée par l’ENT.' }).waitFor()
    await typeInEditor(hugo.page, ' Hugo aussi.')
    await lea.page.locator('#editor .doc-text', { hasText: 'Hugo aussi.' }).waitFor()
    await lea.page.locator('#editor .caret[data-user="s-02"] .caret-label', { hasText: 'Hugo' }).waitFor()
    await hugo.page.locator('#here-list .person[data-user="s-01"]').waitFor()
    await waitSaved(lea.page)
    const a = await docText(lea.page)
    const b = await docText(hugo.page)
    assert(a === b, `both replicas converge:\n${a}\n---\n${b}`)
    await axe(lea.page, 'room (ENT)')
    await shot(lea.page, '15-salle-ent')
  })

  await scenario('ent_token_renewal', async () => {
    // SOCKET_TOKEN_TTL_S is 30 here: the page renews its token on its own, and a doc
    // socket that drops reconnects with the new one.
    const before = (await stored(lea.page)).token
    await lea.page.waitForFunction((old) => JSON.parse(sessionStorage.getItem('atelier.session')).token !== old, before, { timeout: 30000 })
    await lea.page.evaluate(() => window.__atelier.current.docSession().provider.ws.close())
    await lea.page.locator('#conn-state[data-state="online"]').waitFor()
    await typeInEditor(lea.page, ' Après le renouvellement.')
    await hugo.page.locator('#editor .doc-text', { hasText: 'Après le renouvellement.' }).waitFor()
  })

  await scenario('ent_signout', async () => {
    const { page } = lea
    const old = (await stored(page)).token
    await page.getByRole('button', { name: 'Se déconnecter' }).click()
    await page.getByRole('heading', { level: 1, name: 'Connexion' }).waitFor()
    assert(await stored(page) === null, 'the tab forgot its session')
    const status = await page.evaluate(() => fetch('/auth/session').then((r) => r.json()))
    assert(status.user === null, 'the server ended the session')
    // The token she had is refused from now on (4401), on a socket as on REST.
    const code = await page.evaluate(([room, token]) => new Promise((resolve) => {
      const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/yjs/${room}/rapport?token=${encodeURIComponent(token)}`)
      ws.onclose = (e) => resolve(e.code)
    }), [ROOM, old])
    assert(code === 4401, `old token refused with 4401, got ${code}`)
    const rest = await page.evaluate((token) => fetch('/api/me', { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.status), old)
    assert(rest === 401, `old token refused on REST: ${rest}`)
    // Hugo, signed in on his own, goes on.
    await typeInEditor(hugo.page, ' Hugo continue.')
    await waitSaved(hugo.page)
  })

  await scenario('no_token_in_console', async () => {
    assert(consoleProblems.length === 0, consoleProblems.join('\n'))
  })

  for (const u of [lea, hugo]) await u?.context.close().catch(() => {})
  assert(browser, 'the browser ran')
}

run(main)
