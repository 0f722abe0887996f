// "Travaux de la classe": a teacher's assignments for one class (GET
// /api/classes/{id}/assignments) with where their works stand, and the form that
// publishes a new one (POST): title, instructions (markdown), resources, due date and
// time (the teacher's own zone; sent with its offset), target, starter document, late
// work allowed.

import { api, enc } from '../api.js'
import { h, fill } from '../dom.js'
import { t } from '../i18n.js'
import { dueText, isoFromInput, localInput, phaseTag } from '../work.js'

/** "Titre | https://…" or a bare URL, one per line → [{title, url}]. */
export function parseResources (text) {
  const out = []
  for (const line of String(text).split('\n')) {
    const trimmed = line.trim()
    if (!trimmed) continue
    const bar = trimmed.lastIndexOf('|')
    const title = bar >= 0 ? trimmed.slice(0, bar).trim() : ''
    const url = (bar >= 0 ? trimmed.slice(bar + 1) : trimmed).trim()
    out.push({ title: title || url, url })
  }
  return out
}

export async function renderAssignments (main, { go, classId }) {
  const [overview, listed] = await Promise.all([
    api(`/api/classes/${enc(classId)}/overview`),
    api(`/api/classes/${enc(classId)}/assignments`)
  ])
  const className = overview.class.name
  const title = t('assign.title', { name: className })

  const list = h('ul', { class: 'assign-list', id: 'assign-list' })
  function drawList (items) {
    fill(list, !items.length && h('li', { class: 'muted-text' }, t('assign.none')), items.map((a) => h('li', { class: 'assign-item', 'data-assignment': a.id },
      h('h3', {}, h('a', { href: `#/assignment/${enc(a.id)}` }, a.title)),
      h('p', { class: 'muted-text' }, t('work.due'), ' : ', dueText(a.due_at), ' · ', t('target.' + a.target)),
      h('p', { class: 'assign-counts' }, Object.entries(a.counts ?? {}).map(([phase, n]) =>
        h('span', { class: 'assign-count' }, phaseTag(phase), ' ', String(n)))))))
  }
  drawList(listed.assignments)

  // ---------------------------------------------------------------- the form
  const field = (id, label, input, help) => h('div', { class: 'form-field' },
    h('label', { for: id }, label), input, help && h('p', { class: 'help', id: `${id}-help` }, help))
  const tomorrow = new Date(Date.now() + 86400000)
  tomorrow.setHours(18, 0, 0, 0)
  const titleInput = h('input', { id: 'assign-title', name: 'title', type: 'text', required: true, maxlength: '200', autocomplete: 'off' })
  const instructions = h('textarea', { id: 'assign-instructions', name: 'instructions', rows: '5', maxlength: '10000', 'aria-describedby': 'assign-instructions-help' })
  const resources = h('textarea', { id: 'assign-resources', name: 'resources', rows: '3', 'aria-describedby': 'assign-resources-help', spellcheck: 'false' })
  const due = h('input', { id: 'assign-due', name: 'due_at', type: 'datetime-local', step: 'any', required: true, 'aria-describedby': 'assign-due-help', value: localInput(tomorrow.getTime() / 1000) })
  const starter = h('textarea', { id: 'assign-starter', name: 'starter', rows: '4', maxlength: '20000', 'aria-describedby': 'assign-starter-help' })
  const lateBox = h('input', { id: 'assign-late', name: 'allow_late', type: 'checkbox' })
  const targets = ['groups', 'students', 'class'].map((value, i) => h('label', { class: 'radio' },
    h('input', { type: 'radio', name: 'target', value, checked: i === 0 }), ' ', t('target.' + value)))
  const formError = h('p', { class: 'form-error', role: 'alert', id: 'assign-error' })
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('assign.publish'))
  const form = h('form', {
    class: 'assign-form', id: 'assign-form', 'aria-labelledby': 'assign-form-title',
    onsubmit: async (e) => {
      e.preventDefault()
      formError.textContent = ''
      const dueAt = isoFromInput(due.value)
      if (!dueAt || new Date(dueAt).getTime() <= Date.now()) {
        formError.textContent = t('assign.duePast'); due.setAttribute('aria-invalid', 'true'); due.focus(); return
      }
      due.removeAttribute('aria-invalid')
      const body = {
        title: titleInput.value.trim(),
        instructions: instructions.value,
        resources: parseResources(resources.value),
        due_at: dueAt,
        target: form.querySelector('input[name="target"]:checked')?.value ?? 'groups',
        starter: starter.value,
        allow_late: lateBox.checked
      }
      submit.disabled = true
      try {
        const res = await api(`/api/classes/${enc(classId)}/assignments`, { method: 'POST', body })
        go(`#/assignment/${enc(res.assignment.id)}`)
      } catch (error) {
        formError.textContent = t('assign.error', { error: error.message })
        submit.disabled = false
      }
    }
  },
  h('h2', { id: 'assign-form-title' }, t('assign.new')),
  field('assign-title', t('assign.fieldTitle'), titleInput),
  field('assign-instructions', t('assign.fieldInstructions'), instructions, t('assign.instructionsHelp')),
  field('assign-resources', t('assign.fieldResources'), resources, t('assign.resourcesHelp')),
  field('assign-due', t('assign.fieldDue'), due, t('assign.dueHelp')),
  h('fieldset', { class: 'form-field' }, h('legend', {}, t('assign.fieldTarget')), targets),
  field('assign-starter', t('assign.fieldStarter'), starter, t('assign.starterHelp')),
  h('div', { class: 'form-field form-check' }, lateBox, h('label', { for: 'assign-late' }, t('assign.fieldLate'))),
  formError,
  h('p', { class: 'actions' }, submit))

  main.replaceChildren(h('div', { class: 'page assignments' },
    h('nav', { 'aria-label': t('nav.breadcrumb'), class: 'crumbs' },
      h('ol', {}, h('li', {}, h('a', { href: '#/' }, t('nav.spaces'))),
        h('li', {}, h('a', { href: `#/class/${enc(classId)}` }, t('spaces.classPage'))),
        h('li', { 'aria-current': 'page' }, t('assign.crumb')))),
    h('h1', { tabindex: '-1' }, title),
    h('div', { class: 'assign-grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'assign-list-title' },
        h('h2', { id: 'assign-list-title' }, t('assign.list')), list),
      h('section', { class: 'panel' }, form))))
  return { title }
}
