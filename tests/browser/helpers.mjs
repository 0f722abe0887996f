// What the browser suites share: Playwright (playwright-core from client_demo/node_modules)
// driving Debian's Chromium, the scenario runner and its results file, the page helpers.
// Used by suite.mjs (demo mode) and ent_signin.mjs (sign-in through the ENT's OpenID
// provider). Each suite is started by its Python test with BROWSER_CONFIG (JSON):
//   {baseUrl, chromium, screenshots: dir|null, results: file, only?: [names], timeoutS}
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

export const config = JSON.parse(process.env.BROWSER_CONFIG)
export const BASE = config.baseUrl
export const VIEWPORT = { width: 1280, height: 800 }
export const T = 15000 // default wait

export const results = []
export const axeReports = []
export const consoleProblems = []
/** The one browser of the suite (set by run()). */
export let browser

export function assert (cond, message) { if (!cond) throw new Error(message) }

export async function scenario (name, fn) {
  if (config.only && !config.only.includes(name)) return
  const started = Date.now()
  try {
    await fn()
    results.push({ name, ok: true, ms: Date.now() - started })
    console.log(`ok   ${name} (${Date.now() - started} ms)`)
  } catch (error) {
    results.push({ name, ok: false, error: String(error?.stack ?? error), ms: Date.now() - started })
    console.log(`FAIL ${name}: ${error?.message ?? error}`)
    for (const problem of consoleProblems.slice(-5)) console.log(`     console: ${problem}`)
  }
}

/** A new person: their own browser context (cookies, sessionStorage) and page, watched
 *  for tokens written to the console and for page errors. */
export async function newPerson (userId) {
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
  return { context, page, userId }
}

/** A new person signed in through the demo screen, on "Mes espaces". */
export async function signInDemo (userId) {
  const person = await newPerson(userId)
  const { page } = person
  await page.goto(BASE + '/')
  await page.locator('#demo-user').waitFor()
  await page.selectOption('#demo-user', userId)
  await page.getByRole('button', { name: /^Entrer$/ }).click()
  await page.getByRole('heading', { level: 1, name: 'Mes espaces' }).waitFor()
  return person
}

export async function openRoom (page, room, doc) {
  await page.evaluate((hash) => { location.hash = hash }, `#/room/${room}${doc ? '/' + doc : ''}`)
  await page.locator('#editor .doc-text').waitFor()
  await page.locator('#conn-state[data-state="online"]').waitFor()
}

/** axe-core in the page: no serious or critical violation. */
export async function axe (page, screen) {
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

export async function shot (page, name) {
  if (!config.screenshots) return
  mkdirSync(config.screenshots, { recursive: true })
  await page.mouse.move(0, 0)
  await page.screenshot({ path: path.join(config.screenshots, `${name}.png`) })
}

export async function typeInEditor (page, text) {
  const editor = page.locator('#editor .doc-text')
  await editor.click()
  await page.keyboard.press('End')
  await page.keyboard.type(text, { delay: 5 })
}

/** Open another doc of the room already shown (the room screen switches docs in place). */
export async function switchDoc (page, room, doc) {
  await page.evaluate((hash) => { location.hash = hash }, `#/room/${room}/${doc}`)
  await page.locator('#doc-title', { hasText: `« ${doc} »` }).waitFor()
  await page.locator('#editor .doc-text').waitFor()
  await page.locator('#conn-state[data-state="online"]').waitFor()
}

/** Text of an element without what is there for screen readers only. */
export async function visibleText (locator) {
  return locator.evaluate((el) => {
    const copy = el.cloneNode(true)
    copy.querySelectorAll('.sr-only, .caret').forEach((c) => c.remove())
    return copy.textContent
  })
}

/** The doc's text without the collaborators' caret labels. */
export async function docText (page) {
  return page.locator('#editor .doc-text').evaluate((el) => {
    const copy = el.cloneNode(true)
    copy.querySelectorAll('.caret').forEach((c) => c.remove())
    return copy.textContent
  })
}

export async function waitSaved (page) {
  await page.locator('#save-state[data-state="saved"]').waitFor({ timeout: T })
  const text = await page.locator('#save-state').innerText()
  assert(/Enregistré/.test(text), `indicator says ${text}`)
}

/** Launch the browser, run the suite's scenarios, write the results file, exit. */
export function run (main) {
  const deadline = setTimeout(() => {
    results.push({ name: 'deadline', ok: false, error: 'the suite took too long' })
    writeFileSync(config.results, JSON.stringify({ results, axe: axeReports }, null, 1))
    process.exit(2)
  }, (config.timeoutS ?? 240) * 1000)

  ;(async () => {
    browser = await chromium.launch({
      executablePath: config.chromium,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
    })
    await main()
  })().catch((error) => {
    results.push({ name: 'suite', ok: false, error: String(error?.stack ?? error) })
  }).finally(async () => {
    clearTimeout(deadline)
    writeFileSync(config.results, JSON.stringify({ results, axe: axeReports }, null, 1))
    try { await browser?.close() } catch {}
    process.exit(results.every((r) => r.ok) ? 0 : 1)
  })
}
