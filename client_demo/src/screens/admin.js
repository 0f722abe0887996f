// "Administration", for the region's admins: import the ENT's roster file (CSV or JSON;
// "Vérifier" runs it dry and shows what would change, by kind, and who would lose access;
// "Importer" applies it — POST /api/admin/roster/import), and read this node's settings
// (GET /api/admin/settings; secrets shown as set or unset). Admins never see room content.

import { api, session } from '../api.js'
import { h, fill } from '../dom.js'
import { formatNumber, t } from '../i18n.js'

const KINDS = ['schools', 'classes', 'groups', 'users', 'memberships', 'parent_links']

export async function renderAdmin (main) {
  const settings = await api('/api/admin/settings')
  const title = t('admin.title')
  const fileInput = h('input', { id: 'roster-file', type: 'file', accept: '.csv,.json,text/csv,application/json', 'aria-describedby': 'roster-help' })
  const force = h('input', { id: 'roster-force', type: 'checkbox' })
  const result = h('div', { id: 'roster-result', role: 'status', 'aria-live': 'polite' })
  const buttons = []

  async function send (dryRun) {
    const file = fileInput.files?.[0]
    if (!file) { fill(result, h('p', { class: 'form-error' }, t('admin.noFile'))); fileInput.focus(); return }
    buttons.forEach((b) => { b.disabled = true })
    fill(result, h('p', {}, t('loading')))
    try {
      const json = /\.json$/i.test(file.name) || file.type === 'application/json'
      const query = `?dry_run=${dryRun ? 1 : 0}${force.checked ? '&force=1' : ''}`
      const response = await fetch(`/api/admin/roster/import${query}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${session.token()}`, 'Content-Type': json ? 'application/json' : 'text/csv' },
        body: await file.arrayBuffer()
      })
      const data = await response.json().catch(() => ({}))
      drawReport(response.status, data)
    } catch (error) {
      fill(result, h('p', { class: 'banner banner-error' }, t('feedback.error', { error: error.message })))
    } finally {
      buttons.forEach((b) => { b.disabled = false })
    }
  }

  function drawReport (status, data) {
    if (status === 400 && data.problems) {
      fill(result, h('div', { class: 'banner banner-error' },
        h('p', {}, t('admin.refusedFile')),
        h('ul', {}, data.problems.map((p) => h('li', {}, [p.line ? t('admin.line', { n: p.line }) : p.path, p.field, p.message].filter(Boolean).join(' · '))))))
      return
    }
    if (!data.counts) { fill(result, h('p', { class: 'banner banner-error' }, data.message ?? `HTTP ${status}`)); return }
    const verdict = data.status === 'refused'
      ? h('p', { class: 'banner banner-warn', 'data-status': 'refused' }, t('admin.refused', { reason: data.refused }))
      : h('p', { class: 'banner banner-info', 'data-status': data.status }, t('admin.status.' + data.status))
    fill(result, verdict,
      h('table', { class: 'works-table roster-diff', id: 'roster-diff' },
        h('caption', {}, t('admin.diffCaption')),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('admin.kind')),
          ['added', 'changed', 'removed'].map((k) => h('th', { scope: 'col' }, t('admin.' + k))))),
        h('tbody', {}, KINDS.map((kind) => h('tr', { 'data-kind': kind },
          h('th', { scope: 'row' }, t('admin.kinds.' + kind)),
          ['added', 'changed', 'removed'].map((k) => h('td', {}, formatNumber(data.counts[kind]?.[k] ?? 0))))))),
      data.lowered.length > 0 && h('p', {}, t('admin.lowered', { n: formatNumber(data.lowered.length) })),
      data.assignments_deleted > 0 && h('p', { class: 'banner banner-warn' }, t('admin.assignmentsDeleted', { n: data.assignments_deleted })))
  }

  const check = h('button', { type: 'button', class: 'btn', id: 'roster-check', onclick: () => send(true) }, t('admin.check'))
  const apply = h('button', { type: 'button', class: 'btn btn-primary', id: 'roster-apply', onclick: () => send(false) }, t('admin.apply'))
  buttons.push(check, apply)

  main.replaceChildren(h('div', { class: 'page admin' },
    h('h1', { tabindex: '-1' }, title),
    h('p', { class: 'lead' }, t('admin.lead')),
    h('section', { class: 'panel', 'aria-labelledby': 'roster-title' },
      h('h2', { id: 'roster-title' }, t('admin.roster')),
      h('div', { class: 'form-field' }, h('label', { for: 'roster-file' }, t('admin.file')), fileInput,
        h('p', { class: 'help', id: 'roster-help' }, t('admin.fileHelp'))),
      h('div', { class: 'form-field form-check' }, force, h('label', { for: 'roster-force' }, t('admin.force'))),
      h('p', { class: 'actions' }, check, apply),
      result),
    h('section', { class: 'panel', 'aria-labelledby': 'settings-title' },
      h('h2', { id: 'settings-title' }, t('admin.settings', { node: settings.node })),
      h('div', { class: 'table-scroll' }, h('table', { class: 'works-table settings-table' },
        h('caption', {}, t('admin.settingsCaption')),
        h('thead', {}, h('tr', {}, ['admin.name', 'admin.value', 'admin.meaning'].map((k) => h('th', { scope: 'col' }, t(k))))),
        h('tbody', {}, settings.settings.map((s) => h('tr', {},
          h('th', { scope: 'row' }, h('code', {}, s.name)),
          h('td', {}, s.value === null ? '—' : String(s.value)),
          h('td', {}, s.description ?? '')))))))))
  return { title }
}
