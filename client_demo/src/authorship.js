// "Qui a écrit quoi": the open doc rendered read-only with each passage marked by its
// author.
//
// Who typed a character is in the local Y.Doc itself: every Yjs item carries the client
// id that created it (`item.id.client`), and the server binds each client id to the user
// whose socket first sent structs under it (GET .../contributions → `authors`, client id
// → user id; `users` gives the names; docs/protocol.md "Progress over REST"). So the view
// walks the Tiptap fragment (`ydoc.getXmlFragment('default')`, the Collaboration
// extension's default field) and, in each Y.XmlText, the linked list of items
// (`_start`, `.right`), keeping the ones not deleted whose content is a string. Formatting
// marks are `ContentFormat` items in the same list (y-prosemirror's encoding): they are
// followed so bold stays bold. Yjs 13 internals (Item, ContentString, ContentFormat are
// exported); `instanceof` rather than `constructor.name`, which a minifier may rename.
//
// Readable without colour: each author gets a colour (dom.js colorOf) AND an underline
// style, each run a title ("Écrit par Léa") and, for screen readers, a "[Léa]" marker
// where the author changes; a legend lists the authors with their sample and count.

import * as Y from 'yjs'
import { colorOf, fill, h } from './dom.js'
import { t, tn } from './i18n.js'

const UNDERLINES = ['solid', 'dashed', 'dotted', 'double', 'wavy']
const MARKS = { bold: 'strong', italic: 'em', strike: 's', code: 'code', underline: 'u' }

/**
 * The doc as a tree of blocks whose text is cut in runs of one client and one set of marks.
 * @param {Y.XmlFragment} fragment
 * @returns {Array<{type: 'element', name: string, attrs: object, children: any[]}|{type: 'text', runs: Array<{text: string, client: number, marks: string[]}>}>}
 */
export function authorTree (fragment) {
  return fragment.toArray().map(node)
}

function node (yNode) {
  if (yNode instanceof Y.XmlText) return { type: 'text', runs: textRuns(yNode) }
  if (yNode instanceof Y.XmlElement) {
    return { type: 'element', name: yNode.nodeName, attrs: yNode.getAttributes(), children: yNode.toArray().map(node) }
  }
  return { type: 'element', name: 'unknown', attrs: {}, children: [] }
}

/** Runs of (text, client id, marks) of one Y.XmlText, in document order. */
export function textRuns (ytext) {
  const runs = []
  const marks = new Map()
  let item = ytext._start
  while (item) {
    if (!item.deleted) {
      const content = item.content
      if (content instanceof Y.ContentFormat) {
        if (content.value === null || content.value === undefined) marks.delete(content.key)
        else marks.set(content.key, content.value)
      } else if (content instanceof Y.ContentString) {
        const client = item.id.client
        const names = [...marks.keys()].filter((k) => k in MARKS).sort()
        const last = runs[runs.length - 1]
        if (last && last.client === client && last.marks.join() === names.join()) last.text += content.str
        else runs.push({ text: content.str, client, marks: names })
      }
    }
    item = item.right
  }
  return runs
}

/** Every client id that wrote visible text in the tree. */
export function clientsIn (tree, out = new Set()) {
  for (const n of tree) {
    if (n.type === 'text') for (const r of n.runs) out.add(r.client)
    else clientsIn(n.children, out)
  }
  return out
}

const BLOCKS = {
  paragraph: 'p', blockquote: 'blockquote', bulletList: 'ul', orderedList: 'ol', listItem: 'li',
  codeBlock: 'pre', horizontalRule: 'hr', hardBreak: 'br'
}

/**
 * The read-only authorship view of a doc.
 *   const view = new AuthorshipView({ ydoc, fetchContributions, me: {id, clientID} })
 *   host.append(view.element); await view.show() … view.hide()
 */
export class AuthorshipView {
  /**
   * @param {object} o
   * @param {Y.Doc} o.ydoc
   * @param {() => Promise<{authors: object, users: Array<{id, name}>}>} o.fetchContributions
   * @param {string} o.docName
   * @param {{id: string, name: string}} o.me  my own client id is mine before the server says so
   */
  constructor ({ ydoc, fetchContributions, docName, me }) {
    this.ydoc = ydoc
    this.fetchContributions = fetchContributions
    this.me = me
    this.authors = new Map() // client id → user id
    this.names = new Map([[me.id, me.name]])
    this.shown = false
    this.timer = null
    this.lastFetch = 0
    this.fetching = null
    this.legend = h('ul', { class: 'author-legend' })
    this.body = h('div', { class: 'doc-text authorship-text' })
    this.note = h('p', { class: 'form-error', role: 'alert' })
    this.element = h('section', {
      class: 'authorship', id: 'authorship', hidden: true, tabindex: '0',
      'aria-label': t('authors.region', { doc: docName })
    },
    h('p', { class: 'help' }, t('authors.help')),
    h('h3', { class: 'legend-title' }, t('authors.legend')),
    this.legend, this.note, this.body)
    this._onUpdate = () => this._schedule()
  }

  async show () {
    this.shown = true
    this.element.hidden = false
    this.ydoc.on('update', this._onUpdate)
    await this._refreshAuthors(true)
    this.render()
  }

  hide () {
    this.shown = false
    this.element.hidden = true
    this.ydoc.off('update', this._onUpdate)
    clearTimeout(this.timer)
  }

  destroy () { this.hide() }

  _schedule () {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { if (this.shown) this.render() }, 250)
  }

  async _refreshAuthors (force = false) {
    // At most one request every 3 s: a burst of new writers costs one fetch.
    if (this.fetching) return this.fetching
    if (!force && Date.now() - this.lastFetch < 3000) return
    this.lastFetch = Date.now()
    this.fetching = (async () => {
      try {
        const data = await this.fetchContributions()
        for (const [client, user] of Object.entries(data.authors ?? {})) this.authors.set(Number(client), user)
        for (const u of data.users ?? []) if (u?.id) this.names.set(u.id, u.name || u.id)
        this.note.textContent = ''
      } catch (error) {
        this.note.textContent = t('authors.error', { message: error.message })
      } finally {
        this.fetching = null
      }
    })()
    return this.fetching
  }

  userOf (client) {
    if (client === this.ydoc.clientID) return this.me.id
    return this.authors.get(client) ?? null
  }

  render () {
    if (!this.shown) return
    const tree = authorTree(this.ydoc.getXmlFragment('default'))
    const clients = clientsIn(tree)
    if ([...clients].some((c) => this.userOf(c) === null) && !this.fetching) {
      // Someone new wrote (or the server bound a client since): ask again, then redraw.
      this._refreshAuthors().then(() => { if (this.shown) this._schedule() })
    }
    // Authors in order of how much of the visible text is theirs.
    const counts = new Map()
    const walk = (nodes) => {
      for (const n of nodes) {
        if (n.type === 'text') {
          for (const r of n.runs) {
            const user = this.userOf(r.client) ?? '?'
            counts.set(user, (counts.get(user) ?? 0) + [...r.text].length)
          }
        } else walk(n.children)
      }
    }
    walk(tree)
    const order = [...counts.entries()].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])))
    const styles = new Map(order.map(([user], i) => [user, {
      color: user === '?' ? '#4d5566' : colorOf(user),
      underline: UNDERLINES[i % UNDERLINES.length],
      name: user === '?' ? t('authors.unknown') : (this.names.get(user) ?? user)
    }]))
    fill(this.legend, order.map(([user, n]) => {
      const s = styles.get(user)
      return h('li', { 'data-author': user },
        h('span', { class: 'author-sample', style: sampleStyle(s), 'aria-hidden': 'true' }, 'abc'),
        h('span', { class: 'person-name' }, s.name), ' ',
        h('span', { class: 'muted-text' }, `(${tn('authors.count', n)})`))
    }))
    const scroll = this.element.scrollTop
    const blocks = tree.map((n) => this._block(n, styles))
    fill(this.body, blocks.length && counts.size ? blocks : h('p', { class: 'muted-text' }, t('authors.empty')))
    this.element.scrollTop = scroll
  }

  _block (n, styles) {
    if (n.type === 'text') return this._runs(n.runs, styles)
    let tag = BLOCKS[n.name]
    if (n.name === 'heading') tag = `h${Math.min(6, Math.max(1, Number(n.attrs.level) || 2))}`
    if (!tag) tag = 'div'
    const el = h(tag, {})
    const children = n.children.map((c) => this._block(c, styles))
    if (tag === 'pre') el.append(h('code', {}, children))
    else if (tag !== 'br' && tag !== 'hr') el.append(...children.flat())
    return el
  }

  _runs (runs, styles) {
    let previous = null
    return runs.map((r) => {
      const user = this.userOf(r.client) ?? '?'
      const s = styles.get(user)
      let inner = r.text
      for (const mark of r.marks) inner = h(MARKS[mark], {}, inner)
      const marker = user !== previous && h('span', { class: 'sr-only' }, t('authors.marker', { name: s.name }))
      previous = user
      return h('span', {
        class: 'by-author', 'data-author': user, title: t('authors.by', { name: s.name }), style: runStyle(s)
      }, marker, inner)
    })
  }
}

function runStyle (s) {
  return `text-decoration-line:underline;text-decoration-style:${s.underline};text-decoration-color:${s.color};` +
    `text-decoration-thickness:2px;text-underline-offset:3px;background-color:${s.color}1a`
}

function sampleStyle (s) {
  return `${runStyle(s)};border-left:.6rem solid ${s.color}`
}
