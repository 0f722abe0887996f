// A room: its docs, the rich-text editor (Yjs + Tiptap, named carets), the chat, who is
// here, the connection and "Enregistré" indicators, the read-only / locked banners, and
// for the doc its history panel (../history.js) and "who wrote what" view (../authorship.js).

import { RoomChannel, renderMessage } from '../live.js'
import { api, enc, freshToken, session, wsBase } from '../api.js'
import { colorOf, fill, h, jitteredDelay } from '../dom.js'
import { clock, t } from '../i18n.js'
import { DocSession } from '../docsession.js'
import { createHistoryPanel } from '../history.js'
import { AuthorshipView } from '../authorship.js'
import { dueText, handInControl, leftText, phaseTag } from '../work.js'

const DOC_NAME = /^[a-z0-9_-]{1,64}$/
const TYPING_IDLE_MS = 2500

export async function renderRoom (main, { go, signOut, reload, room: roomId, doc: firstDoc }) {
  const me = session.get()?.me ?? await api('/api/me')
  const [room, docsInfo] = await Promise.all([
    api(`/api/rooms/${enc(roomId)}`),
    api(`/api/rooms/${enc(roomId)}/docs`)
  ])
  const access = room.access
  const teacherOfRoom = access.moderate
  // My name as this room shows it (its "Noms affichés aux élèves" policy: a pseudonym,
  // or first name and initial): what the docs' awareness carries to the others.
  const myName = room.me?.name ?? me.display_name
  let docs = docsInfo.docs
  let currentDoc = DOC_NAME.test(firstDoc) ? firstDoc : 'rapport'
  let session_ = null // the open DocSession
  let locked = false
  let deniedReason = null
  // Set when the server refused an edit because the doc is at its size limit: the doc is
  // reloaded (our replica holds what the server will never have) and this says why.
  let tooLargeDoc = null
  let roomFull = false
  let typingTimer = null
  const mutedUsers = new Set()
  let destroyed = false
  let namesTimer = null
  let authorship = null // the AuthorshipView of the open doc, while "who wrote what" is on
  // Names of people, for the history (versions name user ids): the room's members, me,
  // and whoever the contributions name (a teacher who restored a group doc, say).
  const people = new Map((docsInfo.members ?? []).map((m) => [m.id, m.name]))
  people.set(me.id, myName)
  const nameOf = (id) => (id ? people.get(id) ?? id : t('history.unknownUser'))
  const learnNames = (users) => { for (const u of users ?? []) if (u?.id && u.name) people.set(u.id, u.name) }
  // Versions and contributions are for members with chat access and teachers (not parents).
  const mayTrack = access.chat || access.moderate

  // ---------------------------------------------------------------- the room channel
  const channel = new RoomChannel({ url: wsBase(), room: roomId, token: freshToken })
  let channelReady = null
  const whenChannelOpen = () => channel.state === 'open'
    ? Promise.resolve()
    : (channelReady ??= new Promise((resolve) => {
        const on = (e) => {
          if (e.detail.state === 'open' || e.detail.state === 'closed') {
            channel.removeEventListener('state', on); channelReady = null; resolve()
          }
        }
        channel.addEventListener('state', on)
      }))

  // ---------------------------------------------------------------- layout
  const connStatus = h('span', { class: 'pill', id: 'conn-state' })
  const saveStatus = h('span', { class: 'pill', id: 'save-state' })
  const statusBar = h('div', { class: 'statusbar', role: 'status', 'aria-live': 'polite', 'aria-label': t('conn.label') },
    connStatus, saveStatus)

  const docList = h('ul', { class: 'doc-list' })
  const docInput = h('input', {
    id: 'doc-name', name: 'doc', type: 'text', required: true, maxlength: '64', autocomplete: 'off',
    pattern: '[a-z0-9_\\-]{1,64}', 'aria-describedby': 'doc-name-help doc-name-error', spellcheck: 'false'
  })
  const docError = h('p', { id: 'doc-name-error', class: 'form-error', 'aria-live': 'polite' })
  const docForm = h('form', {
    class: 'doc-form',
    onsubmit: (e) => {
      e.preventDefault()
      const name = docInput.value.trim().toLowerCase()
      if (!DOC_NAME.test(name)) {
        docError.textContent = t('room.docBad')
        docInput.setAttribute('aria-invalid', 'true')
        docInput.focus()
        return
      }
      docInput.removeAttribute('aria-invalid')
      docError.textContent = ''
      docInput.value = ''
      go(`#/room/${enc(roomId)}/${enc(name)}`)
    }
  }, h('label', { for: 'doc-name' }, access.docs === 'write' ? t('room.openDoc') : t('room.openDocRead')),
  h('div', { class: 'inline' }, docInput, h('button', { type: 'submit', class: 'btn' }, t('room.docOpen'))),
  h('p', { id: 'doc-name-help', class: 'help' }, t('room.docNameHelp')), docError)

  const hereList = h('ul', { class: 'here-list', id: 'here-list' })
  const hereCount = h('span', { class: 'count' })

  const docTitle = h('h2', { id: 'doc-title' })
  const lockButton = access.lock
    ? h('button', { type: 'button', class: 'btn', id: 'lock-toggle', 'aria-pressed': 'false', onclick: toggleLock })
    : null
  const banner = h('div', { class: 'banner-slot', id: 'doc-banner' })
  const workSlot = h('div', { class: 'work-slot', id: 'work-slot' })
  const toolbar = h('div', { class: 'toolbar', role: 'toolbar', 'aria-label': t('room.toolbar'), 'aria-controls': 'editor' })
  const formatTools = h('div', { class: 'tool-group' })
  const authorsToggle = h('button', {
    type: 'button', class: 'btn btn-small', id: 'authors-toggle', 'aria-pressed': 'false', 'aria-controls': 'authorship-host',
    onclick: () => toggleAuthorship()
  }, t('authors.toggle'))
  const historyButton = h('button', {
    type: 'button', class: 'btn btn-small', id: 'history-open', 'aria-haspopup': 'dialog',
    onclick: (e) => history.open(e.currentTarget)
  }, t('history.button'))
  const viewTools = h('div', { class: 'tool-group tool-group-end' }, mayTrack && [authorsToggle, historyButton])
  toolbar.append(formatTools, viewTools)
  const editorHost = h('div', { class: 'editor', id: 'editor' })
  const authorshipHost = h('div', { class: 'authorship-host', id: 'authorship-host' })
  const history = createHistoryPanel({ roomId, doc: () => currentDoc, canWrite: () => writable(), nameOf, learnNames })

  const chatLog = h('div', { class: 'chat-log', id: 'chat-log', role: 'log', 'aria-label': t('chat.log'), tabindex: '0' })
  const chatOlder = h('button', { type: 'button', class: 'btn btn-small', hidden: true, onclick: loadOlder }, t('chat.older'))
  const chatNote = h('p', { class: 'chat-note', id: 'chat-note', 'aria-live': 'polite' })
  const chatError = h('p', { class: 'form-error', id: 'chat-error', role: 'alert' })
  const chatInput = h('textarea', {
    id: 'chat-input', name: 'message', rows: '2', maxlength: '2000', placeholder: t('chat.placeholder'), 'aria-describedby': 'chat-help chat-note',
    onkeydown: (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); chatForm.requestSubmit() }
    },
    oninput: () => typing()
  })
  const chatSend = h('button', { type: 'submit', class: 'btn btn-primary' }, t('chat.send'))
  const chatForm = h('form', { class: 'chat-form', onsubmit: (e) => { e.preventDefault(); post() } },
    h('label', { for: 'chat-input', class: 'sr-only' }, t('chat.input')),
    chatInput, chatSend,
    h('p', { id: 'chat-help', class: 'help' }, t('chat.help')))

  const chatPanel = h('section', { class: 'panel chat', 'aria-labelledby': 'chat-title' },
    h('h2', { id: 'chat-title' }, t('chat.title')),
    access.chat
      ? [chatOlder, chatLog, chatError, chatNote, chatForm]
      : h('p', { class: 'muted-text' }, t('chat.noChat')))

  main.replaceChildren(h('div', { class: 'room' },
    h('div', { class: 'room-head' },
      h('div', {},
        h('nav', { 'aria-label': t('nav.breadcrumb'), class: 'crumbs' },
          h('ol', {}, h('li', {}, h('a', { href: '#/' }, t('nav.spaces'))),
            room.kind === 'group' && room.class_id && me.role === 'teacher' &&
              h('li', {}, h('a', { href: `#/class/${enc(room.class_id)}` }, t('spaces.classPage'))),
            h('li', { 'aria-current': 'page' }, room.name))),
        h('h1', { tabindex: '-1' }, room.name, ' ', h('span', { class: `kind kind-${room.kind}` }, t('spaces.kind.' + room.kind)))),
      statusBar),
    h('div', { class: 'room-grid' },
      h('aside', { class: 'room-side', 'aria-label': t('room.docs') + ' / ' + t('room.here') },
        h('section', { class: 'panel', 'aria-labelledby': 'docs-title' },
          h('h2', { id: 'docs-title' }, t('room.docs')), docList, docForm),
        h('section', { class: 'panel', 'aria-labelledby': 'here-title' },
          h('h2', { id: 'here-title' }, t('room.here'), ' ', hereCount), hereList)),
      h('section', { class: 'panel doc', 'aria-labelledby': 'doc-title' },
        h('div', { class: 'doc-head' }, docTitle, lockButton), banner, workSlot, toolbar, editorHost, authorshipHost),
      chatPanel),
    history.element))

  // ---------------------------------------------------------------- docs
  function renderDocs () {
    const names = new Map(docs.map((d) => [d.name, d]))
    if (!names.has('rapport')) names.set('rapport', { name: 'rapport', locked: false })
    if (!names.has(currentDoc)) names.set(currentDoc, { name: currentDoc, locked })
    const sorted = [...names.values()].sort((a, b) => (a.name === 'rapport' ? -1 : b.name === 'rapport' ? 1 : a.name.localeCompare(b.name)))
    fill(docList, sorted.map((d) => h('li', {},
      h('a', {
        href: `#/room/${enc(roomId)}/${enc(d.name)}`, 'aria-current': d.name === currentDoc ? 'page' : undefined
      }, h('span', { class: 'doc-icon', 'aria-hidden': 'true' }, '¶'), d.name),
      d.assignment && h('span', { class: 'tag tag-work' }, t('room.docWork')),
      d.locked && h('span', { class: 'tag' }, t('room.docLocked')))))
  }

  // ---------------------------------------------------------------- the doc's assignment
  /** The open doc's work, if it is one: its title, due date, status and "Rendre". */
  function renderWork () {
    const work = docs.find((d) => d.name === currentDoc)?.assignment
    if (!work) { workSlot.replaceChildren(); return }
    if (workSlot.querySelector('.handin[data-busy]')) return // a hand-in being confirmed or sent
    const open = work.status === 'open' && work.due_at > Date.now() / 1000 && !locked
    const student = me.role === 'student' && access.docs === 'write'
    fill(workSlot, h('section', { class: 'work-box', 'aria-labelledby': 'work-box-title', 'data-status': work.status },
      h('h3', { id: 'work-box-title' }, t('work.box', { title: work.title })),
      h('p', {}, phaseTag(work.status), ' · ', t('work.due'), ' : ', dueText(work.due_at),
        open && h('span', { class: 'muted-text' }, ' (', leftText(work.due_at), ')')),
      work.submitted_at && h('p', { class: 'handin-done' }, t('work.submittedAt', { when: dueText(work.submitted_at) })),
      student && open && handInControl({ id: work.work_id }, { title: work.title, onDone: (done) => applyWork(done) }),
      teacherOfRoom && h('p', {}, h('a', { href: `#/assignment/${enc(work.id)}/${enc(work.work_id)}` }, t('work.follow')))))
  }

  /** A work's new state (a `work` room event, or our own hand-in's answer). */
  function applyWork (w) {
    if (!w || w.room_id !== roomId) return
    const d = docs.find((x) => x.name === w.doc)
    if (!d?.assignment || d.assignment.work_id !== w.id) return
    d.assignment = { ...d.assignment, status: w.status, due_at: w.due_at, submitted_at: w.submitted_at }
    if (w.doc === currentDoc) renderWork()
  }

  function writable () {
    if (access.docs !== 'write') return false
    if (deniedReason || roomFull) return false
    if (locked && !access.lock) return false
    return true
  }

  function renderBanner () {
    let text = null
    let kind = 'info'
    if (access.docs !== 'write') text = t('banner.readonly')
    else if (locked && !access.lock) { text = t('banner.locked'); kind = 'warn' }
    else if (locked) text = t('banner.lockedTeacher')
    else if (roomFull) { text = t('banner.roomFull'); kind = 'warn' }
    else if (deniedReason) { text = t('banner.denied', { reason: deniedReason }); kind = 'warn' }
    else if (tooLargeDoc === currentDoc) { text = t('banner.tooLarge'); kind = 'warn' }
    fill(banner, text && h('p', { class: `banner banner-${kind}`, id: 'readonly-banner' },
      h('span', { class: 'banner-icon', 'aria-hidden': 'true' }, kind === 'warn' ? '!' : 'i'), text))
    if (lockButton) {
      lockButton.setAttribute('aria-pressed', String(locked))
      lockButton.textContent = locked ? t('lock.unlock') : t('lock.lock')
    }
    session_?.setEditable(writable())
    renderToolbar()
    history.refresh()
  }

  function renderToolbar () {
    const editor = session_?.editor
    const can = writable() && !authorship
    const tool = (label, key, run, active) => h('button', {
      type: 'button', class: 'tool', 'aria-pressed': String(Boolean(active)), disabled: !can, title: label,
      onclick: () => { run(); editor?.commands.focus() }
    }, h('span', { 'aria-hidden': 'true' }, key), h('span', { class: 'sr-only' }, label))
    const a = (name, attrs) => Boolean(editor?.isActive(name, attrs))
    fill(formatTools,
      tool(t('fmt.bold'), 'G', () => editor.chain().focus().toggleBold().run(), a('bold')),
      tool(t('fmt.italic'), 'I', () => editor.chain().focus().toggleItalic().run(), a('italic')),
      tool(t('fmt.h2'), 'T', () => editor.chain().focus().toggleHeading({ level: 2 }).run(), a('heading', { level: 2 })),
      tool(t('fmt.list'), '•', () => editor.chain().focus().toggleBulletList().run(), a('bulletList')),
      tool(t('fmt.olist'), '1.', () => editor.chain().focus().toggleOrderedList().run(), a('orderedList')))
    formatTools.hidden = !writable()
    toolbar.hidden = formatTools.hidden && !mayTrack
  }

  // ---------------------------------------------------------------- who wrote what
  async function toggleAuthorship (on = !authorship) {
    if (on && !authorship && session_) {
      const doc = currentDoc
      authorship = new AuthorshipView({
        ydoc: session_.ydoc,
        docName: doc,
        me: { id: me.id, name: me.display_name },
        fetchContributions: async () => {
          const data = await api(`/api/rooms/${enc(roomId)}/docs/${enc(doc)}/contributions`)
          learnNames(data.users)
          return data
        }
      })
      authorshipHost.replaceChildren(authorship.element)
      editorHost.hidden = true
      authorsToggle.setAttribute('aria-pressed', 'true')
      renderToolbar()
      await authorship.show()
    } else if (!on && authorship) {
      authorship.destroy()
      authorship = null
      authorshipHost.replaceChildren()
      editorHost.hidden = false
      authorsToggle.setAttribute('aria-pressed', 'false')
      renderToolbar()
    }
  }

  function renderStatus () {
    const c = session_?.connection ?? 'connecting'
    const channelState = channel.state
    let conn = c
    if (c === 'online' && access.chat && channelState !== 'open') conn = 'connecting'
    let text
    if (conn === 'reconnecting' && session_) text = t('conn.reconnecting', { s: Math.max(1, Math.ceil((session_.retryAt - Date.now()) / 1000)) })
    else text = t({ online: 'conn.online', offline: 'conn.offline', closed: 'conn.closed', connecting: 'conn.connecting', reconnecting: 'conn.connecting' }[conn])
    connStatus.className = `pill pill-${conn === 'online' ? 'ok' : conn === 'closed' || conn === 'offline' ? 'bad' : 'wait'}`
    connStatus.dataset.state = conn
    connStatus.replaceChildren(h('span', { class: 'dot', 'aria-hidden': 'true' }), text)
    const s = session_?.saveState ?? 'saved'
    const saveKey = { saved: 'save.saved', saving: 'save.saving', offline: 'save.offline', 'offline-clean': 'save.offlineClean' }[s]
    saveStatus.className = `pill pill-${s === 'saved' ? 'ok' : s === 'saving' ? 'wait' : 'bad'}`
    saveStatus.dataset.state = s
    saveStatus.replaceChildren(h('span', { class: 'dot', 'aria-hidden': 'true' }), t(saveKey))
  }

  async function openDoc (name) {
    if (destroyed) return
    currentDoc = DOC_NAME.test(name) ? name : 'rapport'
    history.close()
    toggleAuthorship(false) // the "off" path is synchronous
    session_?.destroy()
    session_ = null
    deniedReason = null
    roomFull = false
    if (tooLargeDoc !== currentDoc) tooLargeDoc = null
    locked = docs.find((d) => d.name === currentDoc)?.locked ?? false
    docTitle.textContent = t('room.editor', { doc: currentDoc })
    renderDocs()
    renderWork()
    editorHost.replaceChildren()
    const user = { id: me.id, name: myName, color: colorOf(me.id) }
    session_ = new DocSession({
      wsBase: wsBase(), room: roomId, doc: currentDoc, token: () => session.token(), user,
      element: editorHost, editable: false, label: t('room.editorLabel', { doc: currentDoc }),
      beforeReconnect: () => Promise.all([freshToken(), access.chat ? whenChannelOpen() : null])
    })
    const mine = session_
    mine.addEventListener('change', () => { if (mine === session_) renderStatus() })
    mine.addEventListener('local-edit', () => typing())
    mine.addEventListener('denied', (e) => {
      if (mine !== session_) return
      if (/^document too large/i.test(e.detail.reason)) {
        // Reload: a fresh replica from the server, without the refused edit.
        tooLargeDoc = currentDoc
        setTimeout(() => { if (mine === session_) openDoc(currentDoc) }, 0) // not inside the provider's handler
        return
      }
      deniedReason = e.detail.reason.replace(/^permission denied:?\s*/i, '') || e.detail.reason
      if (/read-only|locked/i.test(deniedReason) && access.docs === 'write') locked = true
      renderBanner()
    })
    mine.addEventListener('closed', (e) => {
      if (mine !== session_) return
      if (e.detail.code === 4401) signOut(t('error.session'))
      if (e.detail.code === 1008) { roomFull = true; renderBanner() }
      renderStatus()
    })
    mine.editor.on('selectionUpdate', () => renderToolbar())
    mine.editor.on('transaction', () => renderToolbar())
    renderBanner()
    renderStatus()
    channel.setPresence({ doc: currentDoc, typing: false })
    try {
      const { locked: isLocked } = await api(`/api/rooms/${enc(roomId)}/docs/${enc(currentDoc)}/lock`)
      if (mine === session_) { locked = isLocked; renderBanner(); renderDocs() }
    } catch {}
    screen.title = `${currentDoc} · ${room.name}`
  }

  async function toggleLock () {
    lockButton.disabled = true
    try {
      const res = await api(`/api/rooms/${enc(roomId)}/docs/${enc(currentDoc)}/lock`, { method: 'PUT', body: { locked: !locked } })
      locked = res.locked
      setDocLocked(currentDoc, locked)
      renderBanner()
    } catch (error) {
      chatError.textContent = t('chat.error', { message: error.message })
    } finally {
      lockButton.disabled = false
      lockButton.focus()
    }
  }

  function setDocLocked (name, value) {
    const d = docs.find((x) => x.name === name)
    if (d) d.locked = value
    else docs = [...docs, { name, locked: value, updated_at: null }]
    renderDocs()
  }

  function typing () {
    channel.setPresence({ typing: true })
    clearTimeout(typingTimer)
    typingTimer = setTimeout(() => channel.setPresence({ typing: false }), TYPING_IDLE_MS)
  }

  // ---------------------------------------------------------------- presence
  function renderPresence () {
    if (!channel.hello) return
    if (channel.hello.presence === undefined) {
      hereCount.textContent = ''
      fill(hereList, h('li', { class: 'muted-text' }, t('room.hereHidden')))
      return
    }
    const users = [...channel.presence.entries()].filter(([, e]) => e.metas.length)
    users.sort(([a, ea], [b, eb]) => (a === me.id ? -1 : b === me.id ? 1 : ea.name.localeCompare(eb.name)))
    // Docs others have open (a doc just created in another tab) join the list.
    const known = new Set(docs.map((d) => d.name))
    const seen = users.flatMap(([, e]) => e.metas.map((m) => m.doc)).filter((d) => d && DOC_NAME.test(d) && !known.has(d))
    if (seen.length) { docs = [...docs, ...[...new Set(seen)].map((name) => ({ name, locked: false, updated_at: null }))]; renderDocs() }
    const stale = channel.state !== 'open'
    hereList.classList.toggle('stale', stale)
    hereCount.textContent = stale ? `— ${t('conn.offline').toLowerCase()}` : `(${users.length})`
    if (!users.length) { fill(hereList, h('li', { class: 'muted-text' }, t('room.hereNone'))); return }
    fill(hereList, users.map(([id, entry]) => {
      const docsOpen = [...new Set(entry.metas.map((m) => m.doc).filter(Boolean))]
      const isTyping = entry.metas.some((m) => m.typing)
      return h('li', { class: 'person', 'data-user': id },
        h('span', { class: 'avatar', style: `background:${colorOf(id)}`, 'aria-hidden': 'true' }, entry.name.slice(0, 1)),
        h('span', { class: 'person-text' },
          h('span', { class: 'person-name' }, entry.name, ' ', id === me.id && h('span', { class: 'muted-text' }, t('room.me'))),
          h('span', { class: 'person-meta' },
            t('role.' + entry.role),
            docsOpen.length > 0 && [' · ', docsOpen.map((d) => t('room.onDoc', { doc: d })).join(', ')],
            entry.metas.length > 1 && [' · ', t('room.tabs', { n: entry.metas.length })],
            isTyping && h('span', { class: 'typing' }, ' · ', t('room.typing')))))
    }))
  }

  // ---------------------------------------------------------------- chat
  const items = new Map() // message id → element
  const editing = new Set() // ids of my messages being edited (their updates wait)

  function messageItem (m) {
    const mine = m.author.id === me.id
    const li = h('div', { class: `msg${mine ? ' msg-mine' : ''}${m.deleted ? ' msg-deleted' : ''}`, 'data-id': String(m.id), 'data-seq': String(m.seq) })
    const head = h('p', { class: 'msg-head' },
      h('span', { class: 'msg-author', style: `color:${colorOf(m.author.id)}` }, m.author.name),
      m.author.role === 'teacher' && h('span', { class: 'tag' }, t('role.teacher')),
      h('time', { datetime: new Date(m.at * 1000).toISOString(), class: 'muted-text' }, clock(m.at)),
      m.edited_at && !m.deleted && h('span', { class: 'muted-text' }, t('chat.edited')))
    const body = h('div', { class: 'msg-body' })
    if (m.deleted) body.append(h('em', {}, m.deleted_by && m.deleted_by !== m.author.id ? t('chat.deletedBy') : t('chat.deleted')))
    else body.append(renderMessage(m.text))
    li.append(head, body)
    if (!m.deleted) {
      const actions = []
      if (mine && !channel.muted) {
        actions.push(h('button', {
          type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': t('chat.editLabel', { name: m.author.name }),
          onclick: () => startEdit(m, li, body)
        }, t('chat.edit')))
      }
      if (mine || teacherOfRoom) {
        actions.push(h('button', {
          type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': t('chat.deleteLabel', { name: m.author.name }),
          onclick: () => request(channel.remove(m.id))
        }, t('chat.delete')))
      }
      if (teacherOfRoom && m.author.role === 'student') {
        const isMuted = mutedUsers.has(m.author.id)
        actions.push(h('button', {
          type: 'button', class: 'btn btn-small btn-ghost',
          'aria-label': t(isMuted ? 'chat.unmuteLabel' : 'chat.muteLabel', { name: m.author.name }),
          onclick: () => request(isMuted ? channel.unmute(m.author.id) : channel.mute(m.author.id))
        }, t(isMuted ? 'chat.unmute' : 'chat.mute')))
      }
      if (actions.length) li.append(h('div', { class: 'msg-actions' }, actions))
    }
    return li
  }

  function startEdit (m, li, body) {
    const area = h('textarea', { class: 'edit-input', rows: '2', 'aria-label': t('chat.editLabel', { name: m.author.name }), value: m.text })
    const form = h('form', {
      class: 'edit-form',
      onsubmit: async (e) => {
        e.preventDefault()
        if (await request(channel.edit(m.id, area.value))) endEdit(m.id)
      }
    }, area, h('div', { class: 'inline' },
      h('button', { type: 'submit', class: 'btn btn-small btn-primary' }, t('chat.save')),
      h('button', { type: 'button', class: 'btn btn-small', onclick: () => endEdit(m.id) }, t('chat.cancel'))))
    area.addEventListener('keydown', (e) => { if (e.key === 'Escape') endEdit(m.id) })
    editing.add(m.id)
    body.replaceWith(form)
    li.querySelector('.msg-actions')?.setAttribute('hidden', '')
    area.focus()
  }

  function endEdit (id) {
    editing.delete(id)
    const latest = channel.messages.get(id) ?? older.get(id)
    if (latest) placeMessage(latest)
    items.get(id)?.querySelector('.msg-actions button')?.focus()
  }

  function placeMessage (m) {
    const atBottom = chatLog.scrollHeight - chatLog.scrollTop - chatLog.clientHeight < 40
    const li = messageItem(m)
    const old = items.get(m.id)
    if (old) {
      if (editing.has(m.id)) return // being edited here: shown once the edit ends
      old.replaceWith(li)
    } else {
      let before = null
      for (const other of chatLog.children) {
        if (Number(other.dataset.seq) > m.seq) { before = other; break }
      }
      chatLog.querySelector('.chat-empty')?.remove()
      chatLog.insertBefore(li, before)
    }
    items.set(m.id, li)
    if (atBottom || m.author.id === me.id) chatLog.scrollTop = chatLog.scrollHeight
  }

  function renderAllMessages () {
    items.clear()
    chatLog.replaceChildren()
    for (const m of older.values()) if (!channel.messages.has(m.id)) placeMessage(m)
    for (const m of channel.ordered) placeMessage(m)
    if (!channel.ordered.length && !older.size) chatLog.append(h('p', { class: 'chat-empty muted-text' }, t('chat.empty')))
    chatOlder.hidden = !(channel.ordered.length && channel.ordered[0].seq > 1)
    chatLog.scrollTop = chatLog.scrollHeight
  }

  const older = new Map() // messages paged in over REST, older than the channel's history

  async function loadOlder () {
    const seqs = [...channel.ordered, ...older.values()].map((m) => m.seq)
    const first = seqs.length ? Math.min(...seqs) : 0
    if (first <= 1) { chatOlder.hidden = true; return }
    try {
      const page = await api(`/api/rooms/${enc(roomId)}/messages?before=${first}&limit=50`)
      for (const m of page.messages) {
        if (channel.messages.has(m.id)) continue
        older.set(m.id, m)
        placeMessage(m)
      }
      chatOlder.hidden = page.next_before === null
      chatLog.scrollTop = 0
    } catch (error) {
      chatError.textContent = t('chat.error', { message: error.message })
    }
  }

  function errorText (error) {
    if (error?.code === 'not_connected' || error?.code === 'disconnected') return t('chat.notConnected')
    if (error?.code === 'rate_limited') return t('error.rate_limited', { s: Math.ceil(error.retryAfter ?? 1) })
    const lang = document.documentElement.lang
    return error?.messages?.[lang] ?? error?.messages?.fr ?? error?.message ?? String(error)
  }

  async function request (promise) {
    chatError.textContent = ''
    try { await promise; return true } catch (error) { chatError.textContent = errorText(error); return false }
  }

  async function post () {
    const text = chatInput.value.trim()
    if (!text) return
    chatSend.disabled = true
    const ok = await request(channel.post(text))
    chatSend.disabled = false
    if (ok) { chatInput.value = ''; channel.setPresence({ typing: false }) }
    chatInput.focus()
  }

  function renderMuted () {
    const muted = channel.muted
    chatInput.disabled = muted
    chatSend.disabled = muted
    chatNote.textContent = muted ? t('chat.muted') : ''
  }

  // ---------------------------------------------------------------- channel events
  channel.addEventListener('hello', (e) => {
    renderMuted()
    if (access.chat) renderAllMessages()
    renderPresence()
    if (e.detail.gap) chatOlder.hidden = false
  })
  channel.addEventListener('message', (e) => { older.delete(e.detail.message.id); placeMessage(e.detail.message) })
  channel.addEventListener('presence', () => renderPresence())
  channel.addEventListener('muted', (e) => {
    if (e.detail.muted) mutedUsers.add(e.detail.user)
    else mutedUsers.delete(e.detail.user)
    renderMuted()
    for (const m of channel.ordered) if (m.author.id === e.detail.user || e.detail.me) placeMessage(m)
  })
  channel.addEventListener('event', (e) => {
    const ev = e.detail
    if (ev.kind === 'doc_locked') {
      setDocLocked(ev.doc, Boolean(ev.locked))
      if (ev.doc === currentDoc) { locked = Boolean(ev.locked); if (!locked) deniedReason = null; renderBanner(); renderWork() }
    } else if (ev.kind === 'work') {
      applyWork(ev.work)
    } else if (ev.kind === 'doc_saved' && ev.doc === currentDoc && session_) {
      session_.onSaved(ev.sv)
    } else if (ev.kind === 'names' && reload) {
      // The room now names its students otherwise: rejoin (the whole room at once would
      // all come back in the same instant without the jitter) to take my new name.
      namesTimer ??= setTimeout(() => { if (!destroyed) reload() }, jitteredDelay(0, { baseMs: 1500 }))
    }
  })
  channel.addEventListener('state', () => { renderStatus(); renderPresence() })
  channel.addEventListener('closed', (e) => { if (e.detail.code === 4401) signOut(t('error.session')) })

  // The browser knows when the network is gone: close the channel at once (a dead network
  // does not always close sockets), reconnect with a jittered delay when it is back.
  let onlineTimer = null
  const onOffline = () => { clearTimeout(onlineTimer); channel.close(1000, 'offline'); renderStatus() }
  const onOnline = () => {
    clearTimeout(onlineTimer)
    onlineTimer = setTimeout(() => { if (!destroyed) channel.connect() }, jitteredDelay(0, { baseMs: 500 }))
  }
  window.addEventListener('offline', onOffline)
  window.addEventListener('online', onOnline)
  const ticker = setInterval(() => { if (session_?.connection === 'reconnecting') renderStatus() }, 1000)

  if (navigator.onLine) channel.connect()
  const screen = {
    title: `${currentDoc} · ${room.name}`,
    openDoc,
    /** Diagnostics and tests: the open DocSession and the room channel. */
    docSession: () => session_,
    channel,
    destroy () {
      destroyed = true
      clearTimeout(typingTimer)
      clearTimeout(namesTimer)
      clearTimeout(onlineTimer)
      clearInterval(ticker)
      window.removeEventListener('offline', onOffline)
      window.removeEventListener('online', onOnline)
      channel.close()
      history.close()
      authorship?.destroy()
      session_?.destroy()
    }
  }
  renderMuted()
  await openDoc(currentDoc)
  return screen
}
