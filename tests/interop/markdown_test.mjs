// The chat markdown subset of client_demo/src/markdown.js: parseMessage and renderMessage.
//
//   node --test tests/interop/markdown_test.mjs     (after `npm ci --prefix client_demo`)
//
// renderMessage is exercised against a tiny recording document (no jsdom needed): it only
// offers createDocumentFragment/createElement/createTextNode, and any use of innerHTML,
// outerHTML, insertAdjacentHTML or a <script>/<img>/… element fails the test.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { parseMessage, renderMessage, safeHref } from '../../client_demo/src/markdown.js'
import * as live from '../../client_demo/src/live.js'

// ------------------------------------------------------------------ a recording document

const ALLOWED_TAGS = new Set(['strong', 'em', 'code', 'a', 'br'])
const forbidden = (what) => () => { throw new Error(`${what} must never be used`) }

class FakeNode {
  constructor (nodeType, props) {
    Object.assign(this, props)
    this.nodeType = nodeType
    this.childNodes = []
    this.attributes = new Map()
  }

  appendChild (child) {
    assert.ok(child instanceof FakeNode, 'only nodes of this document are appended')
    this.childNodes.push(child)
    return child
  }

  setAttribute (name, value) { this.attributes.set(name, String(value)) }
  getAttribute (name) { return this.attributes.get(name) ?? null }

  get textContent () {
    return this.nodeType === 3 ? this.data : this.childNodes.map((c) => c.textContent).join('')
  }
}
for (const prop of ['innerHTML', 'outerHTML']) {
  Object.defineProperty(FakeNode.prototype, prop, { get: forbidden(prop), set: forbidden(prop) })
}
FakeNode.prototype.insertAdjacentHTML = forbidden('insertAdjacentHTML')

const fakeDocument = {
  createDocumentFragment: () => new FakeNode(11, { nodeName: '#document-fragment' }),
  createElement: (tag) => {
    assert.ok(ALLOWED_TAGS.has(tag), `unexpected element <${tag}>`)
    return new FakeNode(1, { tagName: tag.toUpperCase(), nodeName: tag.toUpperCase() })
  },
  createTextNode: (data) => new FakeNode(3, { nodeName: '#text', data: String(data) }),
  write: forbidden('document.write')
}

/** Serialise like a browser would (text escaped), to compare whole results. */
function html (node) {
  if (node.nodeType === 3) {
    return node.data.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  }
  const inner = node.childNodes.map(html).join('')
  if (node.nodeType === 11) return inner
  const tag = node.tagName.toLowerCase()
  const attrs = [...node.attributes].map(([k, v]) => ` ${k}="${v.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}"`).join('')
  return tag === 'br' ? `<br${attrs}>` : `<${tag}${attrs}>${inner}</${tag}>`
}

const render = (text) => html(renderMessage(text, fakeDocument))

// ------------------------------------------------------------------ parseMessage

test('plain text is one text token; empty text no token', () => {
  assert.deepEqual(parseMessage('Bonjour à tous'), [{ type: 'text', text: 'Bonjour à tous' }])
  assert.deepEqual(parseMessage(''), [])
  assert.deepEqual(parseMessage(undefined), [])
})

test('bold, italic and code spans', () => {
  assert.deepEqual(parseMessage('a **gras** b *penché* c `x = 1`'), [
    { type: 'text', text: 'a ' },
    { type: 'bold', text: 'gras' },
    { type: 'text', text: ' b ' },
    { type: 'italic', text: 'penché' },
    { type: 'text', text: ' c ' },
    { type: 'code', text: 'x = 1' }
  ])
})

test('code is literal: no markup and no links inside', () => {
  assert.deepEqual(parseMessage('`**pas gras** https://a.fr`'), [
    { type: 'code', text: '**pas gras** https://a.fr' }
  ])
})

test('unclosed or empty markers stay text', () => {
  for (const text of ['**pas fermé', '*seul', 'a ** b', '2 * 3 = 6', '``', '`ouvert', '** espace**', '* liste']) {
    const tokens = parseMessage(text)
    assert.deepEqual(tokens, [{ type: 'text', text }], text)
  }
})

test('spans do not cross a newline', () => {
  assert.deepEqual(parseMessage('**a\nb**'), [
    { type: 'text', text: '**a' },
    { type: 'break', text: '\n' },
    { type: 'text', text: 'b**' }
  ])
})

test('newlines are breaks (CRLF too)', () => {
  assert.deepEqual(parseMessage('un\ndeux\r\n\ntrois'), [
    { type: 'text', text: 'un' },
    { type: 'break', text: '\n' },
    { type: 'text', text: 'deux' },
    { type: 'break', text: '\n' },
    { type: 'break', text: '\n' },
    { type: 'text', text: 'trois' }
  ])
})

test('bare https links, trailing punctuation excluded', () => {
  assert.deepEqual(parseMessage('Voir https://fr.wikipedia.org/wiki/Loire. Merci'), [
    { type: 'text', text: 'Voir ' },
    { type: 'link', text: 'https://fr.wikipedia.org/wiki/Loire', href: 'https://fr.wikipedia.org/wiki/Loire' },
    { type: 'text', text: '. Merci' }
  ])
  assert.deepEqual(parseMessage('(https://a.fr/x)'), [
    { type: 'text', text: '(' },
    { type: 'link', text: 'https://a.fr/x', href: 'https://a.fr/x' },
    { type: 'text', text: ')' }
  ])
  const wiki = 'https://en.wikipedia.org/wiki/Paris_(disambiguation)'
  assert.deepEqual(parseMessage(wiki), [{ type: 'link', text: wiki, href: wiki }])
  assert.deepEqual(parseMessage('https://a.fr/?q=1&r=2, ok'), [
    { type: 'link', text: 'https://a.fr/?q=1&r=2', href: 'https://a.fr/?q=1&r=2' },
    { type: 'text', text: ', ok' }
  ])
})

test('only https URLs become links', () => {
  for (const text of ['http://a.fr', 'javascript:alert(1)', 'ftp://a.fr', 'https://', 'xhttps://a.fr', 'data:text/html,<b>']) {
    assert.ok(parseMessage(text).every((t) => t.type === 'text'), text)
  }
})

test('HTML is text', () => {
  assert.deepEqual(parseMessage('<b>x</b> <script>alert(1)</script>'), [
    { type: 'text', text: '<b>x</b> <script>alert(1)</script>' }
  ])
})

// ------------------------------------------------------------------ renderMessage

test('renders the subset with elements and text nodes', () => {
  assert.equal(
    render('**Bravo** *à tous* : `npm ci`\nhttps://atelier.example/aide'),
    '<strong>Bravo</strong> <em>à tous</em> : <code>npm ci</code><br>' +
      '<a href="https://atelier.example/aide" rel="noopener noreferrer" target="_blank">https://atelier.example/aide</a>'
  )
})

test('HTML in a message stays text, everywhere', () => {
  const evil = '<img src=x onerror=alert(1)> **<script>alert(2)</script>** `<b>` *<i>i</i>*'
  const fragment = renderMessage(evil, fakeDocument)
  assert.equal(
    html(fragment),
    '&lt;img src=x onerror=alert(1)&gt; <strong>&lt;script&gt;alert(2)&lt;/script&gt;</strong> ' +
      '<code>&lt;b&gt;</code> <em>&lt;i&gt;i&lt;/i&gt;</em>'
  )
  assert.equal(fragment.textContent, '<img src=x onerror=alert(1)> <script>alert(2)</script> <b> <i>i</i>')
})

test('a link cannot smuggle markup or another scheme', () => {
  const fragment = renderMessage('https://a.fr/"onmouseover="alert(1) https://a.fr/<script>', fakeDocument)
  const links = fragment.childNodes.filter((n) => n.tagName === 'A')
  assert.deepEqual(links.map((a) => a.getAttribute('href')), ['https://a.fr/', 'https://a.fr/'])
  assert.deepEqual(links.map((a) => [...a.attributes.keys()].sort()), [['href', 'rel', 'target'], ['href', 'rel', 'target']])
  assert.ok(html(fragment).includes('&lt;script&gt;'))
  assert.equal(safeHref('javascript:alert(1)'), null)
  assert.equal(safeHref('data:text/html,x'), null)
  assert.equal(safeHref('//evil.example'), null)
  assert.equal(safeHref('https://a.fr/x'), 'https://a.fr/x')
})

test('every link has rel noopener noreferrer and target _blank', () => {
  const fragment = renderMessage('https://a.fr et https://b.fr/c', fakeDocument)
  const links = fragment.childNodes.filter((n) => n.tagName === 'A')
  assert.equal(links.length, 2)
  for (const a of links) {
    assert.equal(a.getAttribute('rel'), 'noopener noreferrer')
    assert.equal(a.getAttribute('target'), '_blank')
    assert.match(a.getAttribute('href'), /^https:\/\//)
  }
})

test('without a document renderMessage says so', () => {
  assert.throws(() => renderMessage('x', undefined), TypeError)
})

test('live.js re-exports the renderer (as docs/protocol.md names it there)', () => {
  assert.equal(live.renderMessage, renderMessage)
  assert.equal(live.parseMessage, parseMessage)
})

test('the client sources never touch innerHTML', async () => {
  for (const file of ['markdown.js', 'live.js']) {
    const source = await readFile(new URL(`../../client_demo/src/${file}`, import.meta.url), 'utf8')
    const code = source.split('\n').filter((l) => !l.trim().startsWith('//') && !l.trim().startsWith('*'))
    assert.ok(!/innerHTML|outerHTML|insertAdjacentHTML|document\.write/.test(code.join('\n')), file)
  }
})
