// The browser suite: Playwright (playwright-core from client_demo/node_modules) driving
// Debian's Chromium against a real Atelier server in demo mode. Started by
// tests/browser/test_client.py, which passes BROWSER_CONFIG (JSON):
//   {baseUrl, chromium, screenshots: dir|null, results: file, only?: [names]}
// Each scenario is recorded in the results file as {name, ok, error, ms}; the Python
// side turns each one into a test. Scenarios share one browser and run in order.

import { createRequire } from 'node:module'
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const clientDir = path.resolve(here, '../../client_demo')
const require = createRequire(path.join(clientDir, 'package.json'))
const { chromium } = require('playwright-core')
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')

const config = JSON.parse(process.env.BROWSER_CONFIG)
const BASE = config.baseUrl
const VIEWPORT = { width: 1280, height: 800 }
const T = 15000 // default wait

const results = []
const axeReports = []
const consoleProblems = []
let browser

function assert (cond, message) { if (!cond) throw new Error(message) }

async function scenario (name, fn) {
  if (config.only && !config.only.includes(name)) return
  const started = Date.now()
  try {
    await fn()
    results.push({ name, ok: true, ms: Date.now() - started })
    console.log(`ok   ${name} (${Date.now() - started} ms)`)
  } catch (error) {
    results.push({ name, ok: false, error: String(error?.stack ?? error), ms: Date.now() - started })
    console.log(`FAIL ${name}: ${error?.message ?? error}`)
  }
}

async function newUser (userId, { path: start = '/' } = {}) {
  const context = await browser.newContext({ viewport: VIEWPORT, locale: 'fr-FR', reducedMotion: 'reduce' })
  const page = await context.newPage()
  page.setDefaultTimeout(T)
  page.on('console', (msg) => {
    const text = msg.text()
    if (/token=|eyJ[A-Za-z0-9_-]{10,}\./.test(text)) consoleProblems.push(`${userId}: token in console: ${text.slice(0, 120)}`)
    if (msg.type() === 'error' && !/WebSocket|ERR_INTERNET_DISCONNECTED|Failed to load resource/.test(text)) {
      consoleProblems.push(`${userId}: console error: ${text.slice(0, 300)}`)
    }
  })
  page.on('pageerror', (error) => consoleProblems.push(`${userId}: page error: ${error.message}`))
  await page.goto(BASE + '/')
  await page.locator('#demo-user').waitFor()
  await page.selectOption('#demo-user', userId)
  await page.getByRole('button', { name: /^Entrer$/ }).click()
  await page.getByRole('heading', { level: 1, name: 'Mes espaces' }).waitFor()
  if (start !== '/') {
    await page.evaluate((hash) => { location.hash = hash }, start)
  }
  return { context, page, userId }
}

async function openRoom (page, room, doc) {
  await page.evaluate((hash) => { location.hash = hash }, `#/room/${room}${doc ? '/' + doc : ''}`)
  await page.locator('#editor .doc-text').waitFor()
  await page.locator('#conn-state[data-state="online"]').waitFor()
}

/** axe-core in the page: no serious or critical violation. */
async function axe (page, screen) {
  await page.addScriptTag({ content: AXE })
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ' :: ' + n.failureSummary) }))
  })
  axeReports.push({ screen, violations: result })
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  assert(bad.length === 0, `axe on ${screen}: ${JSON.stringify(bad, null, 1)}`)
}

async function shot (page, name) {
  if (!config.screenshots) return
  mkdirSync(config.screenshots, { recursive: true })
  await page.mouse.move(0, 0)
  await page.screenshot({ path: path.join(config.screenshots, `${name}.png`) })
}

async function typeInEditor (page, text) {
  const editor = page.locator('#editor .doc-text')
  await editor.click()
  await page.keyboard.press('End')
  await page.keyboard.type(text, { delay: 5 })
}

/** The doc's text without the collaborators' caret labels. */
async function docText (page) {
  return page.locator('#editor .doc-text').evaluate((el) => {
    const copy = el.cloneNode(true)
    copy.querySelectorAll('.caret').forEach((c) => c.remove())
    return copy.textContent
  })
}

async function waitSaved (page) {
  await page.locator('#save-state[data-state="saved"]').waitFor({ timeout: T })
  const text = await page.locator('#save-state').innerText()
  assert(/Enregistré/.test(text), `indicator says ${text}`)
}

// ---------------------------------------------------------------------------- run

async function main () {
  browser = await chromium.launch({
    executablePath: config.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
  })
  let lea, hugo, teacher, parent

  await scenario('signin', async () => {
    const context = await browser.newContext({ viewport: VIEWPORT, locale: 'fr-FR' })
    const page = await context.newPage()
    await page.goto(BASE + '/')
    await page.getByRole('heading', { level: 1, name: 'Connexion de démonstration' }).waitFor({ timeout: T })
    assert(await page.locator('#demo-user option').count() > 60, 'demo users listed')
    await axe(page, 'signin')
    await shot(page, '1-connexion')
    // keyboard only: tab to the select, pick s-01, submit with Enter
    await page.locator('#demo-user').focus()
    await page.keyboard.press('Tab')
    assert(await page.evaluate(() => document.activeElement.textContent) === 'Entrer', 'Tab reaches the button')
    await page.keyboard.press('Enter')
    await page.getByRole('heading', { level: 1, name: 'Mes espaces' }).waitFor({ timeout: T })
    const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('atelier.session')).token)
    assert(typeof token === 'string' && token.length > 20, 'token kept in sessionStorage')
    await context.close()
  })

  await scenario('spaces', async () => {
    lea = await newUser('s-01')
    const { page } = lea
    await page.getByRole('heading', { name: 'Ma classe' }).waitFor()
    await page.getByRole('link', { name: 'Seconde A' }).waitFor()
    await page.getByRole('link', { name: /Groupe 1/ }).waitFor()
    // the skip link moves the focus to the content without leaving the screen
    assert(await page.evaluate(() => document.querySelector('a[href], button, input, select, textarea').className) === 'skip-link', 'skip link first')
    await page.locator('.skip-link').focus()
    await page.keyboard.press('Enter')
    assert(await page.evaluate(() => document.activeElement.id) === 'main', 'focus on main')
    await page.getByRole('heading', { level: 1, name: 'Mes espaces' }).waitFor()
    await axe(page, 'spaces')
    await shot(page, '2-mes-espaces')
  })

  await scenario('coedit', async () => {
    hugo = await newUser('s-02')
    await lea.page.getByRole('link', { name: /Groupe 1/ }).click()
    await lea.page.locator('#conn-state[data-state="online"]').waitFor()
    await openRoom(hugo.page, '2nde-a-g1')
    assert(await lea.page.locator('#doc-title').innerText() === 'Document « rapport »', 'rapport opens by default')
    await typeInEditor(lea.page, 'Notre rapport sur la photosynthèse.')
    await hugo.page.locator('#editor .doc-text', { hasText: 'Notre rapport sur la photosynthèse.' }).waitFor()
    await typeInEditor(hugo.page, ' Hugo ajoute une phrase.')
    await lea.page.locator('#editor .doc-text', { hasText: 'Hugo ajoute une phrase.' }).waitFor()
    // named carets: each sees the other's caret with their name
    await lea.page.locator('#editor .caret[data-user="s-02"] .caret-label', { hasText: 'Hugo' }).waitFor()
    await hugo.page.locator('#editor .caret[data-user="s-01"] .caret-label', { hasText: 'Léa' }).waitFor()
    assert(await lea.page.locator('#editor .caret[data-user="s-01"]').count() === 0, 'no caret of my own')
  })

  await scenario('saved_indicator', async () => {
    await waitSaved(lea.page)
    await waitSaved(hugo.page)
  })

  await scenario('chat', async () => {
    await lea.page.fill('#chat-input', 'Salut Hugo, je fais **l’introduction** !')
    await lea.page.keyboard.press('Enter')
    await hugo.page.locator('#chat-log .msg', { hasText: 'Salut Hugo' }).waitFor()
    assert(await hugo.page.locator('#chat-log .msg strong', { hasText: 'l’introduction' }).count() === 1, 'markdown rendered')
    await hugo.page.fill('#chat-input', 'Ok Léa, je prends la conclusion. <b>pas de HTML</b>')
    await hugo.page.click('button:has-text("Envoyer")')
    await lea.page.locator('#chat-log .msg', { hasText: 'je prends la conclusion' }).waitFor()
    assert(await lea.page.locator('#chat-log .msg b').count() === 0, 'HTML stays text')
    assert(await lea.page.locator('#chat-log .msg', { hasText: '<b>pas de HTML</b>' }).count() === 1, 'HTML shown as text')
    // edit and delete my own
    const mine = lea.page.locator('#chat-log .msg-mine', { hasText: 'Salut Hugo' })
    await mine.getByRole('button', { name: /Modifier/ }).click()
    await lea.page.locator('.edit-form textarea').fill('Salut Hugo, je fais l’introduction et le plan.')
    await lea.page.locator('.edit-form button[type="submit"]').click()
    await hugo.page.locator('#chat-log .msg', { hasText: 'et le plan' }).waitFor()
    await lea.page.fill('#chat-input', 'message à supprimer')
    await lea.page.keyboard.press('Enter')
    const gone = lea.page.locator('#chat-log .msg-mine', { hasText: 'message à supprimer' })
    await gone.getByRole('button', { name: /Supprimer/ }).click()
    await hugo.page.locator('#chat-log .msg-deleted', { hasText: 'Message supprimé' }).waitFor()
  })

  await scenario('presence', async () => {
    for (const { page } of [lea, hugo]) {
      await page.locator('#here-list .person[data-user="s-01"]').waitFor()
      await page.locator('#here-list .person[data-user="s-02"]').waitFor()
      await page.locator('#here-list .person[data-user="s-02"]', { hasText: 'sur « rapport »' }).waitFor()
    }
    // typing shows
    await hugo.page.locator('#editor .doc-text').click()
    await hugo.page.keyboard.type('x')
    await lea.page.locator('#here-list .person[data-user="s-02"] .typing').waitFor()
    await hugo.page.keyboard.press('Backspace')
    // two tabs are one person
    const second = await lea.context.newPage()
    await second.goto(BASE + '/#/room/2nde-a-g1/brouillon')
    await second.locator('#demo-user, #conn-state[data-state="online"]').first().waitFor()
    // a new tab has its own sessionStorage: sign in again there when needed
    if (await second.locator('#demo-user').count()) {
      await second.selectOption('#demo-user', 's-01')
      await second.getByRole('button', { name: /^Entrer$/ }).click()
      await second.getByRole('heading', { level: 1, name: 'Mes espaces' }).waitFor()
      await openRoom(second, '2nde-a-g1', 'brouillon')
    }
    await hugo.page.locator('#here-list .person[data-user="s-01"]', { hasText: '2 onglets' }).waitFor()
    assert(await hugo.page.locator('#here-list .person[data-user="s-01"]').count() === 1, 'two tabs = one person')
    await axe(lea.page, 'room (student)')
    await shot(lea.page, '3-salle-groupe')
    await second.close()
    await hugo.page.locator('#here-list .person[data-user="s-01"]', { hasText: '2 onglets' }).waitFor({ state: 'detached' })
  })

  await scenario('teacher_class_page', async () => {
    teacher = await newUser('t-martin')
    await teacher.page.getByRole('link', { name: 'Suivi des groupes' }).first().click()
    await teacher.page.getByRole('heading', { level: 1, name: /Classe Seconde A/ }).waitFor()
    const g1 = teacher.page.locator('.group-card[data-group="2nde-a-g1"]')
    await g1.locator('.person[data-user="s-01"]').waitFor()
    await g1.locator('.person[data-user="s-02"]').waitFor()
    await g1.locator('.count-badge', { hasText: '2 en ligne' }).waitFor()
    await teacher.page.locator('.group-card[data-group="2nde-a-g2"] .count-badge', { hasText: '0 en ligne' }).waitFor()
    assert(/document|discussion/.test(await g1.locator('.last').innerText()), 'last activity shown')
    await axe(teacher.page, 'class page')
    await shot(teacher.page, '4-suivi-classe')
  })

  await scenario('teacher_lock', async () => {
    await teacher.page.locator('.group-card[data-group="2nde-a-g1"] a', { hasText: 'Ouvrir' }).click()
    await teacher.page.locator('#conn-state[data-state="online"]').waitFor()
    const toggle = teacher.page.locator('#lock-toggle')
    await toggle.click()
    await teacher.page.locator('#lock-toggle[aria-pressed="true"]').waitFor()
    await lea.page.locator('#readonly-banner', { hasText: 'verrouillé' }).waitFor()
    await lea.page.locator('#editor .doc-text[contenteditable="false"]').waitFor()
    await axe(lea.page, 'room (locked)')
    await shot(lea.page, '6-document-verrouille')
    await shot(teacher.page, '8-enseignant-salle-groupe')
    // teacher moderates: deletes a student message
    await teacher.page.locator('#chat-log .msg', { hasText: 'je prends la conclusion' }).getByRole('button', { name: /Supprimer/ }).click()
    await lea.page.locator('#chat-log .msg-deleted', { hasText: 'modération' }).waitFor()
    await toggle.click()
    await teacher.page.locator('#lock-toggle[aria-pressed="false"]').waitFor()
    await lea.page.locator('#readonly-banner').waitFor({ state: 'detached' })
    await lea.page.locator('#editor .doc-text[contenteditable="true"]').waitFor()
    await axe(teacher.page, 'room (teacher)')
  })

  await scenario('parent_readonly', async () => {
    parent = await newUser('p-01')
    await parent.page.getByRole('link', { name: 'Seconde A' }).click()
    await parent.page.locator('#editor .doc-text').waitFor()
    await parent.page.locator('#readonly-banner', { hasText: 'Lecture seule' }).waitFor()
    await parent.page.locator('#editor .doc-text[contenteditable="false"]').waitFor()
    assert(await parent.page.locator('#chat-input').count() === 0, 'no chat for parents')
    // the class doc as the teacher writes it reaches the parent, read-only
    await openRoom(teacher.page, '2nde-a')
    await typeInEditor(teacher.page, 'Sortie au musée jeudi.')
    await parent.page.locator('#editor .doc-text', { hasText: 'Sortie au musée jeudi.' }).waitFor()
    await parent.page.locator('#editor .doc-text').click()
    await parent.page.keyboard.type('intrus')
    await parent.page.waitForTimeout(300)
    assert(!(await parent.page.locator('#editor .doc-text').innerText()).includes('intrus'), 'parent cannot type')
    await axe(parent.page, 'room (parent, read-only)')
    await shot(parent.page, '5-parent-lecture-seule')
  })

  await scenario('offline_merge', async () => {
    const { page, context } = lea
    await waitSaved(page)
    await context.setOffline(true)
    await page.locator('#conn-state[data-state="offline"]').waitFor()
    await typeInEditor(page, ' Ajout hors ligne.')
    await page.locator('#save-state[data-state="offline"]', { hasText: 'Hors ligne — modifications conservées' }).waitFor()
    // meanwhile Hugo writes too
    await typeInEditor(hugo.page, ' Hugo en ligne.')
    await page.waitForTimeout(500)
    assert(!(await hugo.page.locator('#editor .doc-text').innerText()).includes('Ajout hors ligne'), 'offline edit not sent')
    assert(await page.locator('#editor .doc-text', { hasText: 'Ajout hors ligne.' }).count() === 1, 'offline edit stays on screen')
    await axe(page, 'room (offline)')
    await shot(page, '7-hors-ligne')
    await context.setOffline(false)
    await hugo.page.locator('#editor .doc-text', { hasText: 'Ajout hors ligne.' }).waitFor({ timeout: 20000 })
    await page.locator('#editor .doc-text', { hasText: 'Hugo en ligne.' }).waitFor({ timeout: 20000 })
    await page.locator('#conn-state[data-state="online"]').waitFor({ timeout: 20000 })
    await waitSaved(page)
    const a = await docText(page)
    const b = await docText(hugo.page)
    assert(a === b, `both replicas converge:\n${a}\n---\n${b}`)
  })

  await scenario('doc_reconnect_jitter', async () => {
    // Cut Léa's doc socket from the client side: our handler cancels y-websocket's own
    // (unjittered) retry and schedules one with full jitter; the doc comes back and syncs.
    const { page } = lea
    const before = await page.evaluate(() => {
      const s = window.__atelier.current.docSession()
      s.provider.ws.close()
      return { retries: s.retries ?? 0 }
    })
    await page.waitForFunction((n) => (window.__atelier.current.docSession().retries ?? 0) > n, before.retries)
    const after = await page.evaluate(() => {
      const s = window.__atelier.current.docSession()
      return { retries: s.retries, delay: s.lastDelay }
    })
    assert(after.retries === before.retries + 1, `one retry of ours: ${JSON.stringify(after)}`)
    assert(after.delay >= 0 && after.delay <= 500, `first retry within the jitter window: ${after.delay}`)
    await page.locator('#conn-state[data-state="online"]').waitFor()
    await typeInEditor(page, ' Après reconnexion.')
    await hugo.page.locator('#editor .doc-text', { hasText: 'Après reconnexion.' }).waitFor()
    await waitSaved(page)
  })

  await scenario('english_switch', async () => {
    const { page } = hugo
    await page.getByRole('button', { name: 'Switch the interface to English' }).click()
    await page.getByRole('heading', { level: 2, name: 'Chat' }).waitFor()
    assert(await page.evaluate(() => document.documentElement.lang) === 'en', 'lang=en')
    await page.getByRole('button', { name: "Passer l'interface en français" }).click()
    await page.getByRole('heading', { level: 2, name: 'Discussion' }).waitFor()
  })

  await scenario('no_token_in_console', async () => {
    assert(consoleProblems.length === 0, consoleProblems.join('\n'))
  })

  for (const u of [lea, hugo, teacher, parent]) await u?.context.close().catch(() => {})
  await browser.close()
}

const deadline = setTimeout(() => {
  results.push({ name: 'deadline', ok: false, error: 'the suite took too long' })
  writeFileSync(config.results, JSON.stringify({ results, axe: axeReports }, null, 1))
  process.exit(2)
}, (config.timeoutS ?? 240) * 1000)

main().catch((error) => {
  results.push({ name: 'suite', ok: false, error: String(error?.stack ?? error) })
}).finally(async () => {
  clearTimeout(deadline)
  writeFileSync(config.results, JSON.stringify({ results, axe: axeReports }, null, 1))
  try { await browser?.close() } catch {}
  process.exit(results.every((r) => r.ok) ? 0 : 1)
})
