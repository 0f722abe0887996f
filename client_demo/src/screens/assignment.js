// One assignment, for its class's teachers (GET /api/assignments/{id}): a table of the
// groups (or students) with where each work stands — not started, in progress, handed
// in, late, missed, returned — its progress figures and when it was handed in; the rendu
// opened read-only in a panel beside the table, with a link to the live doc; the feedback
// (comment, appreciation, mark) saved as a draft then returned ("Rendre la copie
// corrigée"); an extension for one work; postponing the whole assignment; the ZIP of all
// rendus (ODT or HTML).
//
// Live: the room channel of the class announces every work change (`event` kind `work`);
// the table reloads on it (one GET, at most once a second).

import { RoomChannel } from '../live.js'
import { ApiError, api, enc, freshToken, wsBase } from '../api.js'
import { h, fill } from '../dom.js'
import { ago, formatNumber, t } from '../i18n.js'
import { rebuildHtml, textParagraphs } from '../history.js'
import { dueText, instructionsBlock, isoFromInput, localInput, phaseTag } from '../work.js'

const RELOAD_MS = 1000

export async function renderAssignment (main, { assignmentId, work: firstWork }) {
  let data = await api(`/api/assignments/${enc(assignmentId)}`)
  const a = () => data.assignment
  const classId = data.assignment.class_id
  let selected = null // work id shown in the panel
  const title = a().title

  const tbody = h('tbody')
  const table = h('table', { class: 'works-table', id: 'works-table' },
    h('caption', {}, t('works.caption')),
    h('thead', {}, h('tr', {},
      ['works.unit', 'works.status', 'works.words', 'works.last', 'works.handedIn', 'works.actions'].map((k) => h('th', { scope: 'col' }, t(k))))),
    tbody)
  const summary = h('p', { class: 'works-summary', role: 'status', 'aria-live': 'polite' })
  const panel = h('section', { class: 'panel rendu-panel', id: 'rendu-panel', 'aria-labelledby': 'rendu-title', hidden: true })
  const head = h('div', { class: 'assign-head' })

  function drawHead () {
    fill(head,
      data.assignment.archived && h('p', { class: 'banner banner-info' }, h('span', { class: 'banner-icon', 'aria-hidden': 'true' }, 'i'), t('edit.isArchived')),
      h('p', {}, h('strong', {}, t('work.due'), ' : '), dueText(a().due_at), ' · ', t('target.' + a().target),
        a().allow_late && h('span', {}, ' · ', t('assign.lateAllowed'))),
      instructionsBlock(a()))
  }

  function drawTable () {
    const counts = {}
    for (const w of data.works) counts[w.phase] = (counts[w.phase] ?? 0) + 1
    summary.replaceChildren(...Object.entries(counts).map(([phase, n]) => h('span', { class: 'assign-count' }, phaseTag(phase), ' ', String(n), ' ')))
    fill(tbody, data.works.map((w) => {
      const members = w.unit.kind === 'student' ? '' : w.unit.members.map((m) => m.name).join(', ')
      return h('tr', { 'data-work': w.id, 'data-phase': w.phase, class: w.id === selected ? 'selected' : undefined },
        h('th', { scope: 'row' }, h('span', { class: 'unit-name' }, w.unit.name), members && h('span', { class: 'unit-members' }, members),
          w.extended && h('span', { class: 'tag' }, t('work.extended'))),
        h('td', {}, phaseTag(w.phase)),
        h('td', {}, formatNumber(w.progress.words)),
        h('td', {}, w.progress.last_edit ? ago(w.progress.last_edit) : '—'),
        h('td', {}, w.submitted_at ? dueText(w.submitted_at) : '—'),
        h('td', { class: 'row-actions' },
          h('a', { class: 'btn btn-small', href: `#/room/${enc(w.room_id)}/${enc(w.doc)}` }, t('works.liveDoc'), h('span', { class: 'sr-only' }, ` — ${w.unit.name}`)),
          w.version_id && h('button', {
            type: 'button', class: 'btn btn-small', 'data-action': 'open-rendu', 'aria-controls': 'rendu-panel',
            onclick: () => openRendu(w.id)
          }, t('works.rendu'), h('span', { class: 'sr-only' }, ` — ${w.unit.name}`))))
    }))
  }

  // ---------------------------------------------------------------- the rendu panel
  async function openRendu (workId, { focus = true } = {}) {
    selected = workId
    drawTable()
    const work = data.works.find((w) => w.id === workId)
    if (!work) return
    panel.hidden = false
    fill(panel, h('h2', { id: 'rendu-title', tabindex: '-1' }, t('rendu.title', { name: work.unit.name })), h('p', { role: 'status' }, t('loading')))
    let rendu
    try {
      rendu = await api(`/api/works/${enc(workId)}/rendu`)
    } catch (error) {
      fill(panel, h('h2', { id: 'rendu-title', tabindex: '-1' }, t('rendu.title', { name: work.unit.name })),
        h('p', { class: 'banner banner-error', role: 'alert' }, error instanceof ApiError && error.status === 404 ? t('rendu.none') : error.message))
      return
    }
    if (selected !== workId) return
    const body = typeof rendu.html === 'string' && rendu.html.trim() ? rebuildHtml(rendu.html) : textParagraphs(rendu.text ?? '')
    const fb = work.feedback ?? {}
    const comment = h('textarea', { id: 'fb-comment', rows: '4', maxlength: '4000', value: fb.comment ?? '' })
    const appreciation = h('input', { id: 'fb-appreciation', type: 'text', maxlength: '200', value: fb.appreciation ?? '', autocomplete: 'off' })
    const mark = h('input', { id: 'fb-mark', type: 'text', maxlength: '20', value: fb.mark ?? '', autocomplete: 'off', 'aria-describedby': 'fb-mark-help' })
    const note = h('p', { class: 'form-note', role: 'status', 'aria-live': 'polite', id: 'fb-note' })
    const values = () => ({ comment: comment.value, appreciation: appreciation.value, mark: mark.value })
    const save = async () => {
      await api(`/api/works/${enc(workId)}/feedback`, { method: 'PUT', body: values() })
    }
    const saveButton = h('button', {
      type: 'button', class: 'btn', id: 'fb-save',
      onclick: async () => {
        try { await save(); note.textContent = t('feedback.saved') } catch (error) { note.textContent = t('feedback.error', { error: error.message }) }
      }
    }, t('feedback.save'))
    const returnButton = h('button', {
      type: 'button', class: 'btn btn-primary', id: 'fb-return',
      onclick: async () => {
        try {
          await save()
          await api(`/api/works/${enc(workId)}/return`, { method: 'POST' })
          await reload()
          await openRendu(workId, { focus: false })
          panel.querySelector('#fb-note').textContent = t('feedback.returned')
        } catch (error) { note.textContent = t('feedback.error', { error: error.message }) }
      }
    }, work.returned_at ? t('feedback.returnAgain') : t('feedback.return'))
    const reopenDue = h('input', { id: 'reopen-due', type: 'datetime-local', step: 'any', value: localInput(Date.now() / 1000 + 86400) })
    const reopenNote = h('p', { class: 'form-note', role: 'status', 'aria-live': 'polite' })
    fill(panel,
      h('div', { class: 'rendu-head' },
        h('h2', { id: 'rendu-title', tabindex: '-1' }, t('rendu.title', { name: work.unit.name })),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => closePanel() }, t('rendu.close'))),
      h('p', { class: 'muted-text' },
        phaseTag(work.phase), ' · ',
        work.submitted_by ? t('rendu.by', { when: dueText(work.submitted_at ?? rendu.version.created_at), who: nameOf(work, work.submitted_by) }) : t('rendu.frozen', { when: dueText(rendu.version.created_at) }),
        ' · ', h('a', { href: `#/room/${enc(work.room_id)}/${enc(work.doc)}` }, t('works.liveDoc'))),
      h('div', { class: 'rendu-body doc-text', id: 'rendu-body', 'aria-label': t('rendu.label'), role: 'document', tabindex: '0' }, body),
      h('form', { class: 'feedback-form', 'aria-labelledby': 'fb-title', onsubmit: (e) => e.preventDefault() },
        h('h3', { id: 'fb-title' }, t('feedback.title')),
        h('div', { class: 'form-field' }, h('label', { for: 'fb-comment' }, t('feedback.comment')), comment),
        h('div', { class: 'form-field' }, h('label', { for: 'fb-appreciation' }, t('work.appreciation')), appreciation),
        h('div', { class: 'form-field' }, h('label', { for: 'fb-mark' }, t('work.mark')), mark, h('p', { class: 'help', id: 'fb-mark-help' }, t('feedback.markHelp'))),
        h('p', { class: 'actions' }, saveButton, returnButton), note),
      h('form', {
        class: 'reopen-form', 'aria-labelledby': 'reopen-title',
        onsubmit: async (e) => {
          e.preventDefault()
          const dueAt = isoFromInput(reopenDue.value)
          if (!dueAt) return
          try {
            await api(`/api/works/${enc(workId)}/reopen`, { method: 'POST', body: { due_at: dueAt } })
            reopenNote.textContent = t('reopen.done')
            await reload()
          } catch (error) { reopenNote.textContent = t('feedback.error', { error: error.message }) }
        }
      },
      h('h3', { id: 'reopen-title' }, t('reopen.title')),
      h('div', { class: 'form-field' }, h('label', { for: 'reopen-due' }, t('reopen.due')), reopenDue),
      h('p', { class: 'actions' }, h('button', { type: 'submit', class: 'btn' }, t('reopen.submit'))), reopenNote))
    if (focus) panel.querySelector('#rendu-title')?.focus()
  }

  function closePanel () {
    const was = selected
    selected = null
    panel.hidden = true
    drawTable()
    tbody.querySelector(`tr[data-work="${CSS.escape(was ?? '')}"] [data-action="open-rendu"]`)?.focus()
  }

  function nameOf (work, userId) {
    return work.unit.members?.find((m) => m.id === userId)?.name ?? userId
  }

  // ---------------------------------------------------------------- postpone, export
  const postponeDue = h('input', { id: 'postpone-due', type: 'datetime-local', step: 'any', value: localInput(data.assignment.due_at) })
  const postponeNote = h('p', { class: 'form-note', role: 'status', 'aria-live': 'polite' })
  const postpone = h('form', {
    class: 'postpone-form inline-form', 'aria-labelledby': 'postpone-title',
    onsubmit: async (e) => {
      e.preventDefault()
      const dueAt = isoFromInput(postponeDue.value)
      if (!dueAt) return
      try {
        data = await api(`/api/assignments/${enc(assignmentId)}`, { method: 'PATCH', body: { due_at: dueAt } })
        postponeNote.textContent = t('postpone.done', { when: dueText(data.assignment.due_at) })
        drawHead(); drawTable()
      } catch (error) { postponeNote.textContent = t('feedback.error', { error: error.message }) }
    }
  },
  h('h2', { id: 'postpone-title' }, t('postpone.title')),
  h('div', { class: 'form-field' }, h('label', { for: 'postpone-due' }, t('postpone.due')), postponeDue),
  h('p', { class: 'actions' }, h('button', { type: 'submit', class: 'btn' }, t('postpone.submit'))), postponeNote)

  // ---------------------------------------------------------------- edit, archive
  const editTitle = h('input', { id: 'edit-title', type: 'text', required: true, maxlength: '200', value: data.assignment.title, autocomplete: 'off' })
  const editInstructions = h('textarea', { id: 'edit-instructions', rows: '4', maxlength: '10000', value: data.assignment.instructions })
  const editLate = h('input', { id: 'edit-late', type: 'checkbox', checked: data.assignment.allow_late })
  const editNote = h('p', { class: 'form-note', role: 'status', 'aria-live': 'polite' })
  const patch = async (body, done) => {
    try {
      data = await api(`/api/assignments/${enc(assignmentId)}`, { method: 'PATCH', body })
      editNote.textContent = done
      drawHead(); drawTable(); drawArchive()
    } catch (error) { editNote.textContent = t('feedback.error', { error: error.message }) }
  }
  const archiveButton = h('button', { type: 'button', class: 'btn', id: 'archive-toggle', onclick: () => patch({ archived: !data.assignment.archived }, data.assignment.archived ? t('edit.unarchived') : t('edit.archived')) })
  const drawArchive = () => { archiveButton.textContent = data.assignment.archived ? t('edit.unarchive') : t('edit.archive') }
  drawArchive()
  const edit = h('details', { class: 'edit-box' },
    h('summary', {}, t('edit.title')),
    h('form', {
      class: 'edit-form',
      onsubmit: (e) => {
        e.preventDefault()
        patch({ title: editTitle.value, instructions: editInstructions.value, allow_late: editLate.checked }, t('edit.saved'))
      }
    },
    h('div', { class: 'form-field' }, h('label', { for: 'edit-title' }, t('assign.fieldTitle')), editTitle),
    h('div', { class: 'form-field' }, h('label', { for: 'edit-instructions' }, t('assign.fieldInstructions')), editInstructions),
    h('div', { class: 'form-field form-check' }, editLate, h('label', { for: 'edit-late' }, t('assign.fieldLate'))),
    h('p', { class: 'actions' }, h('button', { type: 'submit', class: 'btn' }, t('edit.save')), archiveButton)),
    editNote)

  const exportNote = h('p', { class: 'form-note', role: 'status', 'aria-live': 'polite' })
  async function download (format) {
    exportNote.textContent = t('export.working')
    try {
      const response = await fetch(`/api/assignments/${enc(assignmentId)}/export?format=${format}`, {
        headers: { Authorization: `Bearer ${await freshToken()}` }
      })
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      const blob = await response.blob()
      const name = /filename="?([^";]+)"?/.exec(response.headers.get('Content-Disposition') ?? '')?.[1] ?? `rendus.${format}.zip`
      const url = URL.createObjectURL(blob)
      const link = h('a', { href: url, download: name, hidden: true })
      document.body.append(link)
      link.click()
      link.remove()
      setTimeout(() => URL.revokeObjectURL(url), 10000)
      exportNote.textContent = t('export.done', { name })
    } catch (error) { exportNote.textContent = t('feedback.error', { error: error.message }) }
  }
  const exportBox = h('section', { class: 'export-box', 'aria-labelledby': 'export-title' },
    h('h2', { id: 'export-title' }, t('export.title')),
    h('p', { class: 'actions' },
      h('button', { type: 'button', class: 'btn', id: 'export-odt', onclick: () => download('odt') }, t('export.odt')),
      h('button', { type: 'button', class: 'btn', id: 'export-html', onclick: () => download('html') }, t('export.html'))),
    exportNote)

  // ---------------------------------------------------------------- live
  let reloadTimer = null
  async function reload () {
    try { data = await api(`/api/assignments/${enc(assignmentId)}`) } catch { return }
    drawTable()
  }
  const channel = new RoomChannel({ url: wsBase(), room: classId, token: freshToken })
  channel.addEventListener('event', (e) => {
    if (e.detail.kind !== 'work' || e.detail.work?.assignment_id !== assignmentId) return
    if (!reloadTimer) reloadTimer = setTimeout(() => { reloadTimer = null; reload() }, RELOAD_MS)
  })
  channel.connect()

  drawHead()
  drawTable()
  main.replaceChildren(h('div', { class: 'page assignment' },
    h('nav', { 'aria-label': t('nav.breadcrumb'), class: 'crumbs' },
      h('ol', {}, h('li', {}, h('a', { href: '#/' }, t('nav.spaces'))),
        h('li', {}, h('a', { href: `#/class/${enc(classId)}/travaux` }, t('assign.crumb'))),
        h('li', { 'aria-current': 'page' }, title))),
    h('h1', { tabindex: '-1' }, title),
    head,
    edit,
    h('div', { class: 'works-grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'works-title' },
        h('h2', { id: 'works-title' }, t('works.title')), summary, h('div', { class: 'table-scroll' }, table)),
      panel),
    h('div', { class: 'assign-tools' }, h('section', { class: 'panel' }, postpone), h('section', { class: 'panel' }, exportBox))))
  if (firstWork) openRendu(firstWork, { focus: false })
  return {
    title,
    destroy () { clearTimeout(reloadTimer); channel.close() }
  }
}
