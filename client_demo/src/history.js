// The "Historique" panel of a doc: its versions (GET .../versions), one shown read-only
// (GET versions/{id}), compared with the doc now (GET versions/{id}/diff), restored
// (POST versions/{id}/restore, after a confirmation) or the doc now named (POST versions).
// Routes and fields: docs/protocol.md, "Progress over REST".
//
// A modal <dialog>: the browser keeps the focus inside and makes the page behind inert;
// Escape closes it (or, while a restore is being confirmed, cancels the confirmation);
// on close the focus goes back to the button that opened it.
//
// A version's `html` is sanitised by the server; we still never hand it to innerHTML.
// DOMParser parses it into an inert document (no script runs, nothing loads), and the
// view is REBUILT from it with h(): only an allow-list of text elements, no attribute at
// all, links reduced to their text. Structure and bold/italic survive; nothing else can.

import { api, enc } from './api.js'
import { colorOf, fill, h } from './dom.js'
import { ago, dateTime, t, tn } from './i18n.js'

const KINDS = ['pause', 'interval', 'session', 'named', 'restore']
const ALLOWED = {
  P: 'p', BLOCKQUOTE: 'blockquote', UL: 'ul', OL: 'ol', LI: 'li', PRE: 'pre', CODE: 'code',
  STRONG: 'strong', B: 'strong', EM: 'em', I: 'em', S: 's', STRIKE: 's', DEL: 's', U: 'u',
  BR: 'br', HR: 'hr', SUB: 'sub', SUP: 'sup',
  // headings sit under the panel's h2/h3: shifted down two levels
  H1: 'h3', H2: 'h4', H3: 'h5', H4: 'h6', H5: 'h6', H6: 'h6'
}
const DROPPED = new Set(['SCRIPT', 'STYLE', 'TEMPLATE', 'IFRAME', 'OBJECT', 'EMBED', 'NOSCRIPT', 'SVG', 'MATH', 'HEAD', 'TITLE'])
const ELIDE_OVER = 400 // unchanged stretches longer than this are shortened in a diff
const ELIDE_KEEP = 120

/** Nodes rebuilt from (server-sanitised) HTML: allow-listed elements, text, no attributes. */
export function rebuildHtml (html) {
  const doc = new DOMParser().parseFromString(String(html), 'text/html')
  const walk = (node) => {
    const out = []
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) out.push(document.createTextNode(child.data))
      else if (child.nodeType === Node.ELEMENT_NODE) {
        if (DROPPED.has(child.tagName)) continue
        const tag = ALLOWED[child.tagName]
        if (tag) out.push(h(tag, {}, walk(child)))
        else out.push(...walk(child)) // unknown wrapper (div, span, a…): keep its content
      }
    }
    return out
  }
  return walk(doc.body)
}

/** Paragraphs from plain text (a version without html). */
export function textParagraphs (text) {
  return String(text).split(/\n{1,}/).filter((line) => line.trim()).map((line) => h('p', {}, line))
}

/**
 * @param {object} o
 * @param {string} o.roomId
 * @param {() => string} o.doc  the open doc's name
 * @param {() => boolean} o.canWrite  may I name and restore (write access, not locked for me)?
 * @param {(id: string|null) => string} o.nameOf
 * @param {(users: Array<{id, name}>) => void} o.learnNames
 */
export function createHistoryPanel ({ roomId, doc, canWrite, nameOf, learnNames }) {
  const base = () => `/api/rooms/${enc(roomId)}/docs/${enc(doc())}`
  let opener = null
  let versions = []
  let confirming = null // {version, button}

  const title = h('h2', { id: 'history-title', tabindex: '-1' })
  const status = h('p', { class: 'history-status', id: 'history-status', role: 'status', 'aria-live': 'polite' })
  const error = h('p', { class: 'form-error', id: 'history-error', role: 'alert' })
  const nameInput = h('input', {
    id: 'version-name', name: 'version-name', type: 'text', maxlength: '120', autocomplete: 'off',
    'aria-describedby': 'version-name-help'
  })
  const nameButton = h('button', { type: 'submit', class: 'btn btn-primary' }, t('history.nameSubmit'))
  const nameForm = h('form', { class: 'history-name', onsubmit: (e) => { e.preventDefault(); nameVersion() } },
    h('label', { for: 'version-name' }, t('history.nameLabel')),
    h('div', { class: 'inline' }, nameInput, nameButton),
    h('p', { id: 'version-name-help', class: 'help' }, t('history.nameHelp')))
  const readonlyNote = h('p', { class: 'banner banner-info history-readonly' },
    h('span', { class: 'banner-icon', 'aria-hidden': 'true' }, 'i'), t('history.readonly'))
  const list = h('ol', { class: 'version-list', id: 'version-list' })
  const detailTitle = h('h3', { id: 'version-detail-title', tabindex: '-1' })
  const detailBody = h('div', { class: 'version-detail-body' })
  const detail = h('section', { class: 'version-detail', id: 'version-detail', 'aria-labelledby': 'version-detail-title' },
    detailTitle, detailBody)

  const dialog = h('dialog', { class: 'history-dialog', id: 'history-dialog', 'aria-labelledby': 'history-title' },
    h('div', { class: 'history-head' },
      title,
      h('button', { type: 'button', class: 'btn', onclick: () => close() }, t('history.close'))),
    status, error, nameForm, readonlyNote,
    h('div', { class: 'history-body' },
      h('section', { class: 'versions', 'aria-labelledby': 'versions-title' },
        h('h3', { id: 'versions-title' }, t('history.versions')), list),
      detail))

  dialog.addEventListener('cancel', (e) => {
    // Escape while confirming a restore: cancel the confirmation, keep the panel.
    if (confirming) { e.preventDefault(); cancelConfirm() }
  })
  dialog.addEventListener('close', () => {
    confirming = null
    const back = opener
    opener = null
    if (back?.isConnected) back.focus()
  })

  // "15:34 (il y a 5 min)"; past a day `ago` is itself a date: once is enough.
  const when = (v) => (Date.now() / 1000 - v.at < 86400 ? `${dateTime(v.at)} (${ago(v.at)})` : dateTime(v.at))
  const kindText = (kind) => (KINDS.includes(kind) ? t(`history.kind.${kind}`) : kind)
  const label = (v) => `${when(v)}${v.name ? ` ${t('quote', { text: v.name })}` : ''}`

  function say (text) { status.textContent = text }
  function fail (e) { error.textContent = t('history.error', { message: e?.message ?? String(e) }) }

  function renderPermissions () {
    const can = canWrite()
    nameForm.hidden = !can
    readonlyNote.hidden = can
    for (const button of list.querySelectorAll('.version-restore')) button.hidden = !can
  }

  function renderList () {
    if (!versions.length) { fill(list, h('li', { class: 'muted-text version-empty' }, t('history.empty'))); return }
    fill(list, versions.map((v) => {
      const contributors = (v.contributors ?? []).map((id) => nameOf(id))
      const restore = h('button', {
        type: 'button', class: 'btn btn-small version-restore', 'aria-label': t('history.restoreLabel', { when: label(v) }),
        onclick: (e) => askRestore(v, e.currentTarget)
      }, t('history.restore'))
      return h('li', { class: 'version', 'data-id': String(v.id), 'data-kind': v.kind },
        h('p', { class: 'version-head' },
          h('time', { datetime: new Date(v.at * 1000).toISOString() }, when(v)),
          h('span', { class: `version-kind kind-v-${v.kind}` }, kindText(v.kind)),
          v.name && h('strong', { class: 'version-name' }, t('quote', { text: v.name }))),
        h('p', { class: 'version-meta muted-text' },
          v.by && [t('history.by', { name: nameOf(v.by) }), ' · '],
          contributors.length ? t('history.contributors', { names: contributors.join(', ') }) : t('history.noContributors')),
        h('div', { class: 'version-actions' },
          h('button', { type: 'button', class: 'btn btn-small version-view', 'aria-label': t('history.viewLabel', { when: label(v) }), onclick: () => view(v) }, t('history.view')),
          h('button', { type: 'button', class: 'btn btn-small version-compare', 'aria-label': t('history.compareLabel', { when: label(v) }), onclick: () => compare(v) }, t('history.compare')),
          restore))
    }))
    renderPermissions()
  }

  function showDetail (heading, ...body) {
    detailTitle.textContent = heading
    fill(detailBody, ...body)
    detail.dataset.filled = 'true'
    detailTitle.focus()
  }

  function clearDetail () {
    detailTitle.textContent = t('history.detail')
    fill(detailBody, h('p', { class: 'muted-text' }, t('history.pick')))
    delete detail.dataset.filled
    delete detail.dataset.mode
  }

  async function load () {
    error.textContent = ''
    try {
      const [data, contributions] = await Promise.all([
        api(`${base()}/versions`),
        api(`${base()}/contributions`).catch(() => null)
      ])
      if (contributions?.users) learnNames(contributions.users)
      versions = data.versions ?? []
      renderList()
    } catch (e) { fail(e) }
  }

  async function view (v) {
    error.textContent = ''
    try {
      const data = await api(`${base()}/versions/${enc(v.id)}`)
      const nodes = typeof data.html === 'string' && data.html.trim() ? rebuildHtml(data.html) : textParagraphs(data.text ?? '')
      detail.dataset.mode = 'view'
      showDetail(t('history.viewTitle', { when: label(v) }),
        h('div', { class: 'doc-text version-content', role: 'document', 'aria-label': t('history.content'), tabindex: '0' },
          nodes.length ? nodes : h('p', { class: 'muted-text' }, t('history.emptyVersion'))))
    } catch (e) { fail(e) }
  }

  async function compare (v) {
    error.textContent = ''
    try {
      const data = await api(`${base()}/versions/${enc(v.id)}/diff`)
      const hunks = data.hunks ?? []
      const changed = hunks.some((x) => x.op !== 'equal' && x.text)
      const diff = h('div', { class: 'diff', tabindex: '0', role: 'document', 'aria-label': t('history.compareTitle', { when: label(v) }) },
        hunks.map((x) => {
          if (x.op === 'insert') return h('ins', {}, h('span', { class: 'sr-only' }, t('history.added')), x.text, h('span', { class: 'sr-only' }, t('history.addedEnd')))
          if (x.op === 'delete') return h('del', {}, h('span', { class: 'sr-only' }, t('history.removed')), x.text, h('span', { class: 'sr-only' }, t('history.removedEnd')))
          const text = String(x.text ?? '')
          if (text.length <= ELIDE_OVER) return h('span', {}, text)
          return h('span', {}, text.slice(0, ELIDE_KEEP),
            h('span', { class: 'elided' }, ` ${t('history.elided', { n: text.length - 2 * ELIDE_KEEP })} `),
            text.slice(-ELIDE_KEEP))
        }))
      const authors = (data.by_author ?? []).filter((a) => a.added || a.removed)
      detail.dataset.mode = 'compare'
      showDetail(t('history.compareTitle', { when: label(v) }),
        h('p', { class: 'help' }, t('history.compareHelp')),
        changed ? diff : h('p', {}, t('history.noChange')),
        authors.length > 0 && [
          h('h4', {}, t('history.byAuthor')),
          h('ul', { class: 'by-author-list' }, authors.map((a) => h('li', { 'data-user': a.user ?? '' },
            h('span', { class: 'avatar avatar-small', style: `background:${a.user ? colorOf(a.user) : '#4d5566'}`, 'aria-hidden': 'true' }, (a.user ? nameOf(a.user) : '?').slice(0, 1)),
            t('history.authorLine', {
              name: a.user ? nameOf(a.user) : t('history.unknownUser'),
              added: tn('history.addedN', a.added ?? 0),
              removed: tn('history.removedN', a.removed ?? 0)
            }))))
        ])
    } catch (e) { fail(e) }
  }

  function askRestore (v, button) {
    if (!canWrite()) return
    error.textContent = ''
    confirming = { version: v, button }
    const yes = h('button', { type: 'button', class: 'btn btn-primary', id: 'restore-confirm', 'aria-describedby': 'restore-question', onclick: () => restore(v) }, t('history.confirmYes'))
    detail.dataset.mode = 'confirm'
    detailTitle.textContent = t('history.restoreLabel', { when: label(v) })
    fill(detailBody, h('div', { class: 'confirm', role: 'group', 'aria-labelledby': 'restore-question' },
      h('p', { id: 'restore-question' }, t('history.confirm')),
      h('div', { class: 'inline' }, yes,
        h('button', { type: 'button', class: 'btn', id: 'restore-cancel', onclick: () => cancelConfirm() }, t('history.cancel')))))
    yes.focus()
  }

  function cancelConfirm () {
    const back = confirming?.button
    confirming = null
    clearDetail()
    if (back?.isConnected) back.focus()
  }

  async function restore (v) {
    const yes = detailBody.querySelector('#restore-confirm')
    if (yes) { yes.disabled = true; yes.textContent = t('history.restoring') }
    try {
      await api(`${base()}/versions/${enc(v.id)}/restore`, { method: 'POST' })
      confirming = null
      say(t('history.restored'))
      await load()
      showDetail(t('history.restored'))
      detail.dataset.mode = 'restored'
    } catch (e) {
      fail(e)
      if (yes) { yes.disabled = false; yes.textContent = t('history.confirmYes') }
    }
  }

  async function nameVersion () {
    const name = nameInput.value.trim()
    if (!name) {
      nameInput.setAttribute('aria-invalid', 'true')
      error.textContent = t('history.nameEmpty')
      nameInput.focus()
      return
    }
    nameInput.removeAttribute('aria-invalid')
    error.textContent = ''
    nameButton.disabled = true
    try {
      await api(`${base()}/versions`, { method: 'POST', body: { name } })
      nameInput.value = ''
      say(t('history.named', { name }))
      await load()
    } catch (e) { fail(e) } finally {
      nameButton.disabled = false
      nameInput.focus()
    }
  }

  async function open (from) {
    opener = from ?? document.activeElement
    title.textContent = t('history.title', { doc: doc() })
    say('')
    error.textContent = ''
    clearDetail()
    renderPermissions()
    fill(list, h('li', { class: 'muted-text' }, t('loading')))
    if (!dialog.open) dialog.showModal()
    title.focus()
    await load()
  }

  function close () { if (dialog.open) dialog.close() }

  return {
    element: dialog,
    open,
    close,
    get isOpen () { return dialog.open },
    /** The lock or the access changed: show or hide the write actions. */
    refresh () { if (!canWrite() && confirming) cancelConfirm(); renderPermissions() }
  }
}
