// "À faire": a student's assignments (GET /api/me/todo), soonest due first, each with its
// instructions, resources, due date in the viewer's zone, where the work stands, the
// link to the doc, "Rendre" (with a confirmation) while it is open, and the feedback once
// returned. A parent sees the same for each child (#/todo/{child}) — never a hand-in
// button, and a group's doc only as its title and status (it holds other minors' writing).

import { api, enc, session } from '../api.js'
import { h, fill } from '../dom.js'
import { t } from '../i18n.js'
import { dueText, feedbackBlock, handInControl, instructionsBlock, leftText, phaseTag } from '../work.js'

const TICK_MS = 60000

export async function renderTodo (main, { child }) {
  const me = session.get()?.me ?? await api('/api/me')
  const parent = me.role === 'parent'
  const children = me.children ?? []
  const chosen = parent ? (children.find((c) => c.id === child) ?? children[0] ?? null) : null
  const query = chosen ? `?child=${enc(chosen.id)}` : ''
  let data = parent && !chosen ? { items: [] } : await api(`/api/me/todo${query}`)
  const title = parent ? t('todo.parentTitle', { name: chosen?.name ?? '' }) : t('todo.title')
  const list = h('div', { class: 'todo-sections' })
  const section = (label, id, items) => items.length > 0 && h('section', { class: 'spaces-section', 'aria-labelledby': id },
    h('h2', { id }, label, ' ', h('span', { class: 'count-badge' }, String(items.length))),
    h('ul', { class: 'todo-list' }, items))

  function workBlock (item, work) {
    const a = item.assignment
    const open = work.status === 'open' && work.due_at > Date.now() / 1000
    const docLink = `#/room/${enc(work.room_id)}/${enc(work.doc)}`
    const mayOpen = !parent || work.unit?.kind === 'student'
    return h('div', { class: 'todo-work', 'data-work': work.id, 'data-phase': work.phase },
      h('p', { class: 'todo-status' }, phaseTag(work.phase),
        work.unit?.kind !== 'student' && work.unit?.name && h('span', { class: 'muted-text' }, ' · ', work.unit.name),
        work.extended && h('span', { class: 'tag' }, t('work.extended'))),
      h('p', {}, h('strong', {}, t('work.due'), ' : '), dueText(work.due_at),
        open && h('span', { class: 'muted-text' }, ' (', leftText(work.due_at), ')')),
      work.submitted_at && h('p', { class: 'muted-text' }, t('work.submittedAt', { when: dueText(work.submitted_at) })),
      h('p', { class: 'actions' },
        mayOpen && h('a', { class: 'btn', href: docLink }, open && !parent ? t('todo.work') : t('todo.open'), h('span', { class: 'sr-only' }, ` — ${a.title}`)),
        !parent && work.version_id && h('a', { class: 'btn', href: `#/work/${enc(work.id)}` }, t('work.seeRendu'), h('span', { class: 'sr-only' }, ` — ${a.title}`)),
        parent && mayOpen && work.version_id && h('a', { class: 'btn', href: `#/work/${enc(work.id)}` }, t('work.seeRendu'))),
      !parent && open && handInControl(work, { title: a.title, onDone: () => reload(work.id) }),
      feedbackBlock(work))
  }

  function card (item) {
    const a = item.assignment
    const headingId = `a-${a.id}`
    return h('li', { class: 'todo-card', 'data-assignment': a.id },
      h('article', { 'aria-labelledby': headingId },
        h('h3', { id: headingId }, a.title),
        instructionsBlock(a),
        item.works.map((w) => workBlock(item, w))))
  }

  function draw () {
    const now = Date.now() / 1000
    const todo = []
    const done = []
    for (const item of data.items) {
      const pending = item.works.some((w) => w.status === 'open' && w.due_at > now)
      ;(pending ? todo : done).push(card(item))
    }
    fill(list,
      !data.items.length && h('p', {}, parent ? t('todo.parentNone') : t('todo.none')),
      section(t('todo.pending'), 'todo-pending', todo),
      section(t('todo.finished'), 'todo-finished', done))
  }
  draw()

  /** After a hand-in: the fresh state, and the focus back on that work's status. */
  async function reload (workId) {
    try { data = await api(`/api/me/todo${query}`) } catch { return }
    draw()
    const status = list.querySelector(`[data-work="${CSS.escape(workId)}"] .todo-status`)
    if (status) { status.setAttribute('tabindex', '-1'); status.focus() }
  }

  main.replaceChildren(h('div', { class: 'page todo' },
    h('nav', { 'aria-label': t('nav.breadcrumb'), class: 'crumbs' },
      h('ol', {}, h('li', {}, h('a', { href: '#/' }, t('nav.spaces'))), h('li', { 'aria-current': 'page' }, title))),
    h('h1', { tabindex: '-1' }, title),
    parent && children.length > 1 && h('nav', { class: 'actions', 'aria-label': t('todo.children') },
      children.map((c) => h('a', { class: 'btn', href: `#/todo/${enc(c.id)}`, 'aria-current': c.id === chosen?.id ? 'page' : undefined }, c.name))),
    parent && !children.length && h('p', {}, t('todo.noChild')),
    list))
  const ticker = setInterval(draw, TICK_MS)
  return { title, destroy () { clearInterval(ticker) } }
}
