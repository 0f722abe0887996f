// "Suivi de la classe": the teacher's class console. One card per group of the class
// (GET /api/classes/{id}/overview) with who is online (one RoomChannel per group,
// presence only, as before), the last activity, one block per doc of the group (its
// beginning, size, contributions per student, activity of the last hour), an "idle"
// flag and who has not contributed yet.
//
// Live figures come from ONE more RoomChannel, on the class room: its teachers receive
// `event` frames of kind `progress` (room = group id, doc = doc name) for every doc of
// the class's groups being edited (docs/protocol.md). No Yjs socket is opened here.
//
// "Noms affichés aux élèves": how the class room and its groups show students' names
// (full, first name and initial, or a per-room pseudonym: PUT /api/rooms/{id}/policy for
// each of them).

import { RoomChannel } from '../live.js'
import { api, enc, freshToken, session, wsBase } from '../api.js'
import { colorOf, fill, h, jitteredDelay } from '../dom.js'
import { ago, t } from '../i18n.js'
import { DocBlock, idleText, notContributed } from '../progress.js'

const TICK_MS = 15000

// docs/protocol.md names an overview doc `name`; the server as written sends `doc` (as in
// a progress event). Take either, the contract's first.
const docName = (d) => (typeof d?.name === 'string' ? d.name : typeof d?.doc === 'string' ? d.doc : null)

const docOrder = (a, b) => (a === 'rapport' ? -1 : b === 'rapport' ? 1 : a.localeCompare(b))

export async function renderClass (main, { classId }) {
  const me = session.get()?.me
  const overview = await api(`/api/classes/${enc(classId)}/overview`)
  const channels = []
  const groups = new Map() // group id → card state

  function groupCard (group) {
    const students = group.members.filter((m) => m.role === 'student')
    const online = h('ul', { class: 'online-list' })
    const onlineCount = h('span', { class: 'count-badge' })
    const last = h('p', { class: 'last' })
    const flags = h('div', { class: 'group-flags' })
    const docList = h('div', { class: 'doc-blocks' })
    const participation = h('div', { class: 'participation' })
    const headingId = `g-${group.id}`
    const card = h('li', { class: 'group-card', 'data-group': group.id },
      h('section', { 'aria-labelledby': headingId, class: 'group-section' },
        h('div', { class: 'group-head' }, h('h2', { id: headingId }, group.name), onlineCount),
        h('p', { class: 'muted-text' }, `${students.length} ${t('role.student')}s · ${group.id}`),
        flags,
        h('h3', {}, t('class.online')), online,
        h('h3', {}, t('class.last')), last,
        h('h3', {}, t('console.docs')), docList,
        h('h3', {}, t('console.participation')), participation,
        h('p', { class: 'group-open-row' }, h('a', { class: 'btn group-open', href: `#/room/${enc(group.id)}`, 'aria-label': t('class.open', { name: group.name }) }, t('spaces.open')))))

    const state = {
      group, students, card, docList, flags, participation, online, onlineCount, last,
      blocks: new Map(), // doc name → DocBlock
      lastDoc: group.last_activity?.doc ?? null,
      lastChat: group.last_activity?.chat ?? null
    }
    for (const doc of group.docs ?? []) if (docName(doc)) upsertDoc(state, docName(doc), doc)
    if (!state.blocks.size) fill(docList, h('p', { class: 'muted-text no-docs' }, t('console.noDocs')))
    renderLast(state)
    renderFlags(state)
    return state
  }

  function upsertDoc (state, name, figures) {
    let block = state.blocks.get(name)
    if (!block) {
      block = new DocBlock({ groupId: state.group.id, groupName: state.group.name, name })
      state.blocks.set(name, block)
      state.docList.querySelector('.no-docs')?.remove()
      // Keep the order (rapport first, then by name) without touching the other blocks.
      const after = [...state.blocks.keys()].sort(docOrder).find((other) => docOrder(name, other) < 0 && other !== name)
      state.docList.insertBefore(block.element, after ? state.blocks.get(after).element : null)
    }
    return block.update(figures)
  }

  function renderLast (state) {
    const parts = []
    if (state.lastDoc) parts.push(t('class.lastDoc', { when: ago(state.lastDoc) }))
    if (state.lastChat) parts.push(t('class.lastChat', { when: ago(state.lastChat) }))
    state.last.textContent = parts.length ? parts.join(' · ') : t('class.never')
  }

  function renderFlags (state) {
    const figures = [...state.blocks.values()].map((b) => b.figures)
    const idle = idleText(figures)
    fill(state.flags, idle && h('p', { class: 'flag flag-idle', 'data-flag': 'idle' },
      h('span', { class: 'flag-icon flag-icon-round', 'aria-hidden': 'true' }, '!'), idle))
    const { anybody, missing } = notContributed(state.students, figures)
    if (!anybody) { fill(state.participation, h('p', { class: 'muted-text' }, t('console.nobodyYet'))); return }
    if (!missing.length) { fill(state.participation, h('p', {}, t('console.allContributed'))); return }
    fill(state.participation, h('ul', { class: 'flag-list' }, missing.map((s) => h('li', { class: 'flag flag-student', 'data-user': s.id },
      h('span', { class: 'flag-icon', 'aria-hidden': 'true' }, '○'),
      h('span', { class: 'person-name' }, s.name), ' ', t('console.noContrib')))))
  }

  for (const group of overview.groups) {
    const state = groupCard(group)
    groups.set(group.id, state)

    const channel = new RoomChannel({ url: wsBase(), room: group.id, token: freshToken })
    // The teacher knows the class: real names here, even where the room shows students
    // pseudonyms to each other ("Noms affichés aux élèves").
    const realName = new Map(group.members.map((m) => [m.id, m.name]))
    const renderOnline = () => {
      const users = [...channel.presence.entries()].filter(([id, e]) => e.metas.length && id !== me?.id)
      state.onlineCount.textContent = t('room.hereCount', { n: users.length })
      state.onlineCount.classList.toggle('count-live', users.length > 0)
      if (!users.length) { fill(state.online, h('li', { class: 'muted-text' }, t('class.nobody'))); return }
      fill(state.online, users.map(([id, e]) => {
        const docs = [...new Set(e.metas.map((m) => m.doc).filter(Boolean))]
        const typing = e.metas.some((m) => m.typing)
        const name = realName.get(id) ?? e.name
        return h('li', { class: 'person', 'data-user': id },
          h('span', { class: 'avatar', style: `background:${colorOf(id)}`, 'aria-hidden': 'true' }, name.slice(0, 1)),
          h('span', { class: 'person-text' },
            h('span', { class: 'person-name' }, name),
            h('span', { class: 'person-meta' }, docs.map((d) => t('room.onDoc', { doc: d })).join(', '),
              typing && h('span', { class: 'typing' }, ' · ', t('room.typing')))))
      }))
    }
    channel.addEventListener('presence', renderOnline)
    channel.addEventListener('message', (e) => { state.lastChat = Math.max(state.lastChat ?? 0, e.detail.message.at); renderLast(state) })
    channel.addEventListener('event', (e) => {
      if (e.detail.kind === 'doc_saved') { state.lastDoc = Date.now() / 1000; renderLast(state) }
    })
    channel.connect()
    channels.push(channel)
    fill(state.online, h('li', { class: 'muted-text' }, t('loading')))
  }

  // ---------------------------------------------------------------- live progress
  const livePill = h('span', { class: 'pill pill-wait', id: 'console-live' })
  const liveStatus = h('div', { class: 'statusbar', role: 'status', 'aria-live': 'polite' }, livePill)
  const classChannel = new RoomChannel({ url: wsBase(), room: overview.class.id, token: freshToken })
  const renderLive = () => {
    const state = classChannel.state
    const key = { open: 'console.live', connecting: 'console.connecting', reconnecting: 'console.reconnecting', closed: 'console.closed' }[state]
    livePill.className = `pill pill-${state === 'open' ? 'ok' : state === 'closed' ? 'bad' : 'wait'}`
    livePill.dataset.state = state
    livePill.replaceChildren(h('span', { class: 'dot', 'aria-hidden': 'true' }), t(key))
  }
  classChannel.addEventListener('state', renderLive)
  classChannel.addEventListener('event', (e) => {
    const ev = e.detail
    if (ev.kind !== 'progress') return
    const state = groups.get(ev.room)
    if (!state || typeof ev.doc !== 'string') return
    const { t: _t, kind: _kind, room: _room, doc, ...figures } = ev
    if (!upsertDoc(state, doc, figures)) return
    if (ev.last_edit) state.lastDoc = Math.max(state.lastDoc ?? 0, ev.last_edit)
    renderLast(state)
    renderFlags(state)
  })
  // Back after a drop: what happened meanwhile came to nobody; take the figures again.
  classChannel.addEventListener('hello', async (e) => {
    if (!e.detail.reconnect) return
    try {
      const fresh = await api(`/api/classes/${enc(classId)}/overview`)
      for (const group of fresh.groups) {
        const state = groups.get(group.id)
        if (!state) continue
        for (const doc of group.docs ?? []) if (docName(doc)) upsertDoc(state, docName(doc), doc)
        renderFlags(state)
      }
    } catch {}
  })
  renderLive()
  classChannel.connect()
  channels.push(classChannel)

  const namesPanel = await namesControl([overview.class.id, ...overview.groups.map((g) => g.id)])

  main.replaceChildren(h('div', { class: 'page console' },
    h('nav', { 'aria-label': t('nav.breadcrumb'), class: 'crumbs' },
      h('ol', {}, h('li', {}, h('a', { href: '#/' }, t('nav.spaces'))), h('li', { 'aria-current': 'page' }, overview.class.name))),
    h('div', { class: 'console-head' },
      h('h1', { tabindex: '-1' }, t('console.title', { name: overview.class.name })),
      liveStatus),
    h('p', { class: 'lead' }, t('console.lead')),
    h('p', { class: 'actions' }, h('a', { class: 'btn', href: `#/room/${enc(overview.class.id)}` }, t('class.openClass'))),
    namesPanel,
    h('section', { 'aria-label': t('class.groups') },
      h('ul', { class: 'group-grid console-grid' }, [...groups.values()].map((s) => s.card)))))

  // Offline and back: the channels reconnect by themselves; nudge them when the network returns.
  const onOnline = () => setTimeout(() => channels.forEach((channel) => channel.connect()), jitteredDelay(0, { baseMs: 1000 }))
  const onOffline = () => channels.forEach((channel) => channel.close(1000, 'offline'))
  window.addEventListener('online', onOnline)
  window.addEventListener('offline', onOffline)
  const ticker = setInterval(() => {
    for (const state of groups.values()) {
      renderLast(state)
      for (const block of state.blocks.values()) block.tick()
      renderFlags(state)
    }
  }, TICK_MS)
  return {
    title: t('console.title', { name: overview.class.name }),
    /** Diagnostics and tests. */
    classChannel,
    destroy () {
      clearInterval(ticker)
      window.removeEventListener('online', onOnline)
      window.removeEventListener('offline', onOffline)
      channels.forEach((channel) => channel.close())
    }
  }
}

const NAMINGS = ['full', 'initial', 'pseudonym']

/** The teacher's "Noms affichés aux élèves" control, for these rooms at once. */
async function namesControl (rooms) {
  const current = await Promise.all(rooms.map((id) => api(`/api/rooms/${enc(id)}/policy`).then((p) => p.presence_names)))
  const same = current.every((v) => v === current[0])
  const select = h('select', { id: 'names-policy', name: 'presence_names', 'aria-describedby': 'names-lead names-status' },
    !same && h('option', { value: '', selected: true, disabled: true }, t('names.mixed')),
    NAMINGS.map((n) => h('option', { value: n, selected: same && current[0] === n }, t('names.' + n))))
  const status = h('p', { id: 'names-status', class: 'help', role: 'status', 'aria-live': 'polite' })
  select.addEventListener('change', async () => {
    select.disabled = true
    fill(status, t('loading'))
    try {
      for (const id of rooms) await api(`/api/rooms/${enc(id)}/policy`, { method: 'PUT', body: { presence_names: select.value } })
      select.querySelector('option[value=""]')?.remove()
      fill(status, t('names.saved'))
    } catch (error) {
      fill(status, h('span', { class: 'form-error' }, t('feedback.error', { error: error.message })))
    } finally {
      select.disabled = false
    }
  })
  return h('section', { class: 'panel names-panel', 'aria-labelledby': 'names-title' },
    h('h2', { id: 'names-title' }, t('names.title')),
    h('p', { class: 'help', id: 'names-lead' }, t('names.lead')),
    h('div', { class: 'form-field' }, h('label', { for: 'names-policy' }, t('names.label')), select),
    status)
}
