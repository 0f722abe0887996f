#!/usr/bin/env node
// Tiptap editors in Chromium (the page of page.js, HocuspocusProvider on /collab) and a
// y-websocket reader under Node, on the same Atelier docs:
//
//   open      Léa's page holds her group doc and the class doc over ONE socket; both
//             synced; scopes read-write and readonly (her class doc is not editable)
//   coedit    Léa types in her editor, Hugo (his own page) sees it, and types back
//   yjs       a y-websocket client on /yjs reads the same doc: both sentences are there
//   readonly  typing into the class doc changes nothing
//
// Config (TIPTAP_CONFIG): pageUrl, collabUrl, yjsUrl, chromium, doc, tokens {lea, hugo, reader}.
import { chromium } from 'playwright-core'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const cfg = JSON.parse(process.env.TIPTAP_CONFIG)
const T = 15000
const report = {}
let phase = 'launch'
const fail = (why) => { process.stderr.write(`tiptap: phase ${phase}: ${why}\n${JSON.stringify(report)}\n`); process.exit(1) }
const group = `2nde-a-g1/${cfg.doc}`
const klass = `2nde-a/${cfg.doc}-c`

setTimeout(() => fail('the story took more than 90 s'), 90000).unref()
const browser = await chromium.launch({ executablePath: cfg.chromium, args: ['--no-sandbox'] })
const errors = []
async function person (token, docs) {
  const context = await browser.newContext({ locale: 'fr-FR' })
  const page = await context.newPage()
  page.setDefaultTimeout(T)
  page.on('pageerror', (e) => errors.push(e.message))
  await page.addInitScript((atelier) => { window.ATELIER = atelier }, { url: cfg.collabUrl, token, docs })
  await page.goto(cfg.pageUrl)
  phase += ' (page loaded)'
  return page
}
const editor = (page, name) => page.locator(`.editor[data-doc="${name}"] .ProseMirror`)

try {
  phase = 'open'
  const lea = await person(cfg.tokens.lea, [group, klass])
  await lea.waitForFunction(([g, c]) => window.report.docs[g].synced && window.report.docs[c].synced, [group, klass])
  report.open = await lea.evaluate(([g, c]) => ({
    socketsOpened: window.report.socketsOpened,
    scopes: [window.report.docs[g].scope, window.report.docs[c].scope],
    editable: [window.editors[g].isEditable, window.editors[c].isEditable]
  }), [group, klass])

  phase = 'coedit'
  const hugo = await person(cfg.tokens.hugo, [group])
  await hugo.waitForFunction((g) => window.report.docs[g].synced, group)
  await editor(lea, group).click()
  await lea.keyboard.type('Bonjour de Léa.')
  await editor(hugo, group).filter({ hasText: 'Bonjour de Léa.' }).waitFor()
  await editor(hugo, group).click()
  await hugo.keyboard.press('End')
  await hugo.keyboard.type(' Et de Hugo.')
  await editor(lea, group).filter({ hasText: 'Et de Hugo.' }).waitFor()
  await lea.waitForFunction((g) => window.report.docs[g].unsynced() === 0, group)
  report.coedit = { lea: await editor(lea, group).innerText(), hugo: await editor(hugo, group).innerText() }

  phase = 'yjs'
  const ydoc = new Y.Doc()
  const reader = new WebsocketProvider(cfg.yjsUrl, group, ydoc, { WebSocketPolyfill: WebSocket, params: { token: cfg.tokens.reader }, disableBc: true })
  const start = Date.now()
  while (!(reader.synced && ydoc.getXmlFragment('default').toString().includes('Et de Hugo.'))) {
    if (Date.now() - start > T) fail(`the y-websocket reader sees ${ydoc.getXmlFragment('default').toString()}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  report.yjs = { fragment: ydoc.getXmlFragment('default').toString() }
  reader.destroy()

  phase = 'readonly'
  await editor(lea, klass).click({ force: true })
  await lea.keyboard.type('interdit')
  await new Promise((resolve) => setTimeout(resolve, 500))
  report.readonly = { text: await editor(lea, klass).innerText(), contenteditable: await editor(lea, klass).getAttribute('contenteditable') }
  report.pageErrors = errors
  report.ok = true
} catch (error) {
  fail(error?.stack ?? String(error))
} finally {
  await browser.close()
}
process.stdout.write(JSON.stringify(report) + '\n')
process.exit(0) // the providers' timers would keep Node alive
