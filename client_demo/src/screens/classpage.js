// A teacher's class page: the class's groups (GET /api/classes/{id}/overview), who is
// online in each (one RoomChannel per group, presence only) and the last activity.

import { RoomChannel } from '../live.js'
import { api, enc, session, wsBase } from '../api.js'
import { colorOf, fill, h, jitteredDelay } from '../dom.js'
import { ago, t } from '../i18n.js'

export async function renderClass (main, { classId }) {
  const me = session.get()?.me
  const overview = await api(`/api/classes/${enc(classId)}/overview`)
  const channels = []
  const cards = []

  for (const group of overview.groups) {
    const online = h('ul', { class: 'online-list' })
    const onlineCount = h('span', { class: 'count-badge' })
    const last = h('p', { class: 'last' })
    const card = h('li', { class: 'group-card', 'data-group': group.id },
      h('div', { class: 'group-head' },
        h('h2', { id: `g-${group.id}` }, group.name),
        onlineCount),
      h('p', { class: 'muted-text' }, `${group.members.filter((m) => m.role === 'student').length} ${t('role.student')}s · ${group.id}`),
      h('h3', {}, t('class.online')), online,
      h('h3', {}, t('class.last')), last,
      h('p', {}, h('a', { class: 'btn', href: `#/room/${enc(group.id)}`, 'aria-label': t('class.open', { name: group.name }) }, t('spaces.open'))))
    cards.push(card)

    const state = { doc: group.last_activity?.doc ?? null, chat: group.last_activity?.chat ?? null }
    const renderLast = () => {
      const parts = []
      if (state.doc) parts.push(t('class.lastDoc', { when: ago(state.doc) }))
      if (state.chat) parts.push(t('class.lastChat', { when: ago(state.chat) }))
      last.textContent = parts.length ? parts.join(' · ') : t('class.never')
    }
    renderLast()

    const channel = new RoomChannel({ url: wsBase(), room: group.id, token: () => session.token() })
    const renderOnline = () => {
      const users = [...channel.presence.entries()].filter(([id, e]) => e.metas.length && id !== me?.id)
      onlineCount.textContent = t('room.hereCount', { n: users.length })
      onlineCount.classList.toggle('count-live', users.length > 0)
      if (!users.length) { fill(online, h('li', { class: 'muted-text' }, t('class.nobody'))); return }
      fill(online, users.map(([id, e]) => {
        const docs = [...new Set(e.metas.map((m) => m.doc).filter(Boolean))]
        const typing = e.metas.some((m) => m.typing)
        return h('li', { class: 'person', 'data-user': id },
          h('span', { class: 'avatar', style: `background:${colorOf(id)}`, 'aria-hidden': 'true' }, e.name.slice(0, 1)),
          h('span', { class: 'person-text' },
            h('span', { class: 'person-name' }, e.name),
            h('span', { class: 'person-meta' }, docs.map((d) => t('room.onDoc', { doc: d })).join(', '),
              typing && h('span', { class: 'typing' }, ' · ', t('room.typing')))))
      }))
    }
    channel.addEventListener('presence', renderOnline)
    channel.addEventListener('message', (e) => { state.chat = Math.max(state.chat ?? 0, e.detail.message.at); renderLast() })
    channel.addEventListener('event', (e) => {
      if (e.detail.kind === 'doc_saved') { state.doc = Date.now() / 1000; renderLast() }
    })
    channel.connect()
    channels.push({ channel, renderLast })
    fill(online, h('li', { class: 'muted-text' }, t('loading')))
  }

  main.replaceChildren(h('div', { class: 'page' },
    h('nav', { 'aria-label': t('nav.breadcrumb'), class: 'crumbs' },
      h('ol', {}, h('li', {}, h('a', { href: '#/' }, t('nav.spaces'))), h('li', { 'aria-current': 'page' }, overview.class.name))),
    h('h1', { tabindex: '-1' }, t('class.title', { name: overview.class.name })),
    h('p', { class: 'actions' }, h('a', { class: 'btn', href: `#/room/${enc(overview.class.id)}` }, t('class.openClass'))),
    h('section', { 'aria-label': t('class.groups') },
      h('ul', { class: 'group-grid' }, cards))))

  // Offline and back: the channels reconnect by themselves; nudge them when the network returns.
  const onOnline = () => setTimeout(() => channels.forEach(({ channel }) => channel.connect()), jitteredDelay(0, { baseMs: 1000 }))
  const onOffline = () => channels.forEach(({ channel }) => channel.close(1000, 'offline'))
  window.addEventListener('online', onOnline)
  window.addEventListener('offline', onOffline)
  const ticker = setInterval(() => channels.forEach(({ renderLast }) => renderLast()), 30000)
  return {
    title: t('class.title', { name: overview.class.name }),
    destroy () {
      clearInterval(ticker)
      window.removeEventListener('online', onOnline)
      window.removeEventListener('offline', onOffline)
      channels.forEach(({ channel }) => channel.close())
    }
  }
}
