// The notification bell, for everyone: the unread count in the top bar and the feed in a
// panel (GET /api/me/notifications, POST /api/me/notifications/read).
//
// Live: each new notification reaches the user's open room channels as an `event` of kind
// `notification` (docs/protocol.md); live.js re-dispatches it on `window` as
// `atelier:notification`. A user with two rooms open gets it twice: kept once by id.
// Without a room open (the home screen, "À faire") the feed is polled, every POLL_MS,
// and again when the tab comes back to the front.

import { api, session } from './api.js'
import { h, fill, svg } from './dom.js'
import { ago, t, tn } from './i18n.js'

const POLL_MS = 30000
const LIMIT = 30

const state = { items: [], unread: 0, loaded: false, timer: null, open: false }
const views = new Set() // the mounted bells (one per shell render; the old ones are dropped)

function byNewest (a, b) { return b.at - a.at || b.id.localeCompare(a.id) }

async function refresh () {
  try {
    const data = await api(`/api/me/notifications?limit=${LIMIT}`)
    state.items = data.items
    state.unread = data.unread
    state.loaded = true
    redraw()
  } catch {} // offline or signed out: the next poll tries again
}

function onLive (e) {
  const item = e.detail
  if (!item || typeof item.id !== 'string' || state.items.some((i) => i.id === item.id)) return
  state.items = [item, ...state.items].sort(byNewest).slice(0, LIMIT)
  if (!item.read) state.unread += 1
  redraw(item)
}

async function markRead (ids) {
  const body = ids === 'all' ? { all: true } : { ids }
  try {
    await api('/api/me/notifications/read', { method: 'POST', body })
  } catch { return }
  for (const item of state.items) if (ids === 'all' || ids.includes(item.id)) item.read = true
  state.unread = ids === 'all' ? 0 : Math.max(0, state.unread - ids.length)
  redraw()
}

function target (item) {
  if (session.get()?.me?.role === 'teacher' && item.assignment_id) return `#/assignment/${encodeURIComponent(item.assignment_id)}`
  if (item.assignment_id) return item.child_id ? `#/todo/${encodeURIComponent(item.child_id)}` : '#/todo'
  return '#/'
}

function redraw (fresh) {
  for (const view of views) {
    if (!view.button.isConnected) { views.delete(view); continue }
    view.draw(fresh)
  }
}

/** Start polling and listening once a user is signed in (again at each render: once). */
export function startNotifications () {
  if (state.timer) return
  window.addEventListener('atelier:notification', onLive)
  document.addEventListener('visibilitychange', onVisible)
  document.addEventListener('click', onClick)
  state.timer = setInterval(refresh, POLL_MS)
  refresh()
}

/** A click outside the bell closes its panel. */
function onClick (e) {
  if (!state.open) return
  for (const view of views) if (view.wrap.isConnected && view.wrap.contains(e.target)) return
  state.open = false
  redraw()
}

function onVisible () { if (document.visibilityState === 'visible') refresh() }

export function stopNotifications () {
  clearInterval(state.timer)
  state.timer = null
  window.removeEventListener('atelier:notification', onLive)
  document.removeEventListener('visibilitychange', onVisible)
  document.removeEventListener('click', onClick)
  Object.assign(state, { items: [], unread: 0, loaded: false, open: false })
}

/** The bell and its panel, for the top bar. */
export function bell () {
  const count = h('span', { class: 'bell-count', id: 'bell-count', 'aria-hidden': 'true' })
  const button = h('button', {
    type: 'button', class: 'btn btn-ghost bell', id: 'bell', 'aria-expanded': 'false', 'aria-controls': 'bell-panel',
    onclick: () => toggle()
  }, svg('svg', { class: 'bell-icon', viewBox: '0 0 24 24', width: '18', height: '18', 'aria-hidden': 'true', focusable: 'false' },
    svg('path', { d: 'M12 3a6 6 0 0 0-6 6v3.5L4.5 16h15L18 12.5V9a6 6 0 0 0-6-6Zm-2 15a2 2 0 0 0 4 0', fill: 'none', stroke: 'currentColor', 'stroke-width': '2', 'stroke-linejoin': 'round' })), h('span', { class: 'bell-label' }), count,
  h('span', { class: 'sr-only bell-sr' }))
  const list = h('ul', { class: 'bell-list' })
  const announce = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite' })
  const panel = h('section', { class: 'bell-panel', id: 'bell-panel', hidden: true, 'aria-labelledby': 'bell-title' },
    h('div', { class: 'bell-head' },
      h('h2', { id: 'bell-title' }, t('bell.title')),
      h('button', { type: 'button', class: 'btn btn-small', id: 'bell-read-all', onclick: () => markRead('all') }, t('bell.readAll'))),
    list)
  const wrap = h('div', { class: 'bell-wrap' }, button, panel, announce)

  function toggle (open = !state.open) {
    state.open = open
    if (open) refresh()
    draw()
    if (open) panel.querySelector('.bell-item a, #bell-read-all')?.focus()
  }
  panel.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.stopPropagation(); toggle(false); button.focus() }
  })

  function draw (fresh) {
    const label = state.unread ? tn('bell.unread', state.unread) : t('bell.none')
    button.querySelector('.bell-label').textContent = t('bell.title')
    button.querySelector('.bell-sr').textContent = ` (${label})`
    button.setAttribute('aria-expanded', String(state.open))
    button.dataset.unread = String(state.unread)
    count.textContent = state.unread ? String(state.unread) : ''
    count.hidden = !state.unread
    panel.hidden = !state.open
    if (fresh && !fresh.read) announce.textContent = t('bell.new', { title: fresh.title })
    if (!state.open) return
    if (!state.items.length) { fill(list, h('li', { class: 'muted-text' }, state.loaded ? t('bell.empty') : t('loading'))); return }
    fill(list, state.items.map((item) => h('li', { class: `bell-item${item.read ? '' : ' unread'}`, 'data-kind': item.kind, 'data-id': item.id },
      h('a', {
        href: target(item),
        onclick: () => { if (!item.read) markRead([item.id]); state.open = false; draw() }
      },
      !item.read && h('span', { class: 'sr-only' }, t('bell.unreadOne'), ' '),
      h('span', { class: 'bell-item-title' }, item.title),
      item.body && h('span', { class: 'bell-item-body' }, item.body),
      h('span', { class: 'bell-item-time' }, ago(item.at))))))
  }
  const view = { button, wrap, draw }
  views.add(view)
  draw()
  return wrap
}
