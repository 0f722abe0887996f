// "Gérer les groupes": a teacher's groups of one class (GET /api/classes/{id}/groups):
// create a group, rename it, archive it (its students read its docs and no longer write
// or chat), and move a student into another group (POST /api/classes/{id}/moves) — the
// student's open sockets on the group they left close at once, on every node.

import { api, enc } from '../api.js'
import { h, fill } from '../dom.js'
import { t } from '../i18n.js'

export async function renderGroups (main, { classId }) {
  const overview = await api(`/api/classes/${enc(classId)}/overview`)
  let data = await api(`/api/classes/${enc(classId)}/groups`)
  const title = t('groups.title', { name: overview.class.name })
  const note = h('p', { class: 'form-note', role: 'status', 'aria-live': 'polite', id: 'groups-note' })
  const list = h('ul', { class: 'group-grid manage-grid', id: 'groups-list' })

  const run = async (promise, done) => {
    try {
      const res = await promise
      data = res.groups ? res : await api(`/api/classes/${enc(classId)}/groups`)
      note.textContent = done
      draw()
    } catch (error) { note.textContent = t('feedback.error', { error: error.message }) }
  }

  function moveSelect (student, from) {
    const id = `move-${student.id}`
    const select = h('select', { id, 'data-student': student.id },
      h('option', { value: '' }, t('groups.moveChoose')),
      data.groups.filter((g) => !g.archived && g.id !== from).map((g) => h('option', { value: g.id }, g.name)),
      from && h('option', { value: '__none__' }, t('groups.moveNone')))
    const button = h('button', {
      type: 'button', class: 'btn btn-small', 'data-action': 'move',
      onclick: () => {
        if (!select.value) { select.focus(); return }
        const to = select.value === '__none__' ? null : select.value
        const target = data.groups.find((g) => g.id === to)?.name ?? t('groups.noGroup')
        run(api(`/api/classes/${enc(classId)}/moves`, { method: 'POST', body: { student: student.id, to } }),
          t('groups.moved', { name: student.name, group: target }))
      }
    }, t('groups.move'), h('span', { class: 'sr-only' }, ` ${student.name}`))
    return h('span', { class: 'move-control' },
      h('label', { for: id, class: 'sr-only' }, t('groups.moveLabel', { name: student.name })), select, button)
  }

  function card (g) {
    const nameInput = h('input', { id: `name-${g.id}`, type: 'text', value: g.name, maxlength: '80', autocomplete: 'off' })
    return h('li', { class: `group-card${g.archived ? ' archived' : ''}`, 'data-group': g.id },
      h('section', { 'aria-labelledby': `gh-${g.id}` },
        h('div', { class: 'group-head' },
          h('h2', { id: `gh-${g.id}` }, g.name),
          g.archived && h('span', { class: 'tag' }, t('groups.archivedTag'))),
        h('p', { class: 'muted-text' }, g.id),
        h('ul', { class: 'member-list' }, g.students.length
          ? g.students.map((s) => h('li', { 'data-user': s.id }, h('span', { class: 'person-name' }, s.name), ' ', !g.archived && moveSelect(s, g.id)))
          : h('li', { class: 'muted-text' }, t('groups.empty'))),
        h('form', {
          class: 'inline-form',
          onsubmit: (e) => {
            e.preventDefault()
            run(api(`/api/groups/${enc(g.id)}`, { method: 'PATCH', body: { name: nameInput.value } }), t('groups.renamed'))
          }
        }, h('label', { for: `name-${g.id}` }, t('groups.rename')), nameInput, h('button', { type: 'submit', class: 'btn btn-small' }, t('edit.save'))),
        h('p', { class: 'actions' },
          h('button', {
            type: 'button', class: 'btn btn-small', 'data-action': 'archive',
            onclick: () => run(api(`/api/groups/${enc(g.id)}`, { method: 'PATCH', body: { archived: !g.archived } }),
              g.archived ? t('groups.unarchived', { name: g.name }) : t('groups.archived', { name: g.name }))
          }, g.archived ? t('edit.unarchive') : t('edit.archive'), h('span', { class: 'sr-only' }, ` ${g.name}`)),
          h('a', { class: 'btn btn-small', href: `#/room/${enc(g.id)}` }, t('spaces.open'), h('span', { class: 'sr-only' }, ` ${g.name}`)))))
  }

  function draw () {
    fill(list, data.groups.map(card))
    fill(ungrouped, data.ungrouped.length
      ? h('ul', { class: 'member-list' }, data.ungrouped.map((s) => h('li', { 'data-user': s.id }, h('span', { class: 'person-name' }, s.name), ' ', moveSelect(s, null))))
      : h('p', { class: 'muted-text' }, t('groups.allGrouped')))
  }
  const ungrouped = h('div', { id: 'groups-ungrouped' })

  const newName = h('input', { id: 'group-new', type: 'text', required: true, maxlength: '80', autocomplete: 'off' })
  const create = h('form', {
    class: 'inline-form', 'aria-labelledby': 'group-new-title',
    onsubmit: (e) => {
      e.preventDefault()
      const name = newName.value.trim()
      if (!name) { newName.focus(); return }
      newName.value = ''
      run(api(`/api/classes/${enc(classId)}/groups`, { method: 'POST', body: { name } }), t('groups.created', { name }))
    }
  }, h('h2', { id: 'group-new-title' }, t('groups.new')),
  h('label', { for: 'group-new' }, t('groups.newName')), newName,
  h('button', { type: 'submit', class: 'btn btn-primary' }, t('groups.create')))

  draw()
  main.replaceChildren(h('div', { class: 'page groups' },
    h('nav', { 'aria-label': t('nav.breadcrumb'), class: 'crumbs' },
      h('ol', {}, h('li', {}, h('a', { href: '#/' }, t('nav.spaces'))),
        h('li', {}, h('a', { href: `#/class/${enc(classId)}` }, t('spaces.classPage'))),
        h('li', { 'aria-current': 'page' }, t('groups.crumb')))),
    h('h1', { tabindex: '-1' }, title),
    h('p', { class: 'lead' }, t('groups.lead')),
    note,
    h('section', { class: 'panel' }, create),
    h('section', { 'aria-label': t('groups.list') }, list),
    h('section', { class: 'panel', 'aria-labelledby': 'ungrouped-title' },
      h('h2', { id: 'ungrouped-title' }, t('groups.ungrouped')), ungrouped)))
  return { title }
}
