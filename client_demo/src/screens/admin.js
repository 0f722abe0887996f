// "Administration", for the region's admins: import the ENT's roster file (CSV or JSON;
// "Vérifier" runs it dry and shows what would change, by kind, and who would lose access;
// "Importer" applies it — POST /api/admin/roster/import), and read this node's settings
// (GET /api/admin/settings; secrets shown as set or unset), and the audit trail ("Journal
// d'audit": GET /api/admin/audit with filters, a page at a time; the same filters
// downloaded as CSV from /api/admin/audit.csv). Admins never see room content.

import { api, enc, session } from '../api.js'
import { h, fill } from '../dom.js'
import { dateTime, formatNumber, t } from '../i18n.js'

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

  const audit = auditSection()

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
          h('td', {}, s.description ?? ''))))))),
    audit.element))
  await audit.load()
  return { title }
}

// ------------------------------------------------------------------ the audit trail

function auditSection () {
  const field = (id, label, input) => h('div', { class: 'form-field' }, h('label', { for: id }, label), input)
  const action = h('select', { id: 'audit-action', name: 'action' }, h('option', { value: '' }, t('audit.anyAction')))
  const actor = h('input', { id: 'audit-actor', name: 'actor', type: 'text', maxlength: '64', autocomplete: 'off', spellcheck: 'false' })
  const target = h('input', { id: 'audit-target', name: 'target', type: 'text', maxlength: '200', autocomplete: 'off', spellcheck: 'false' })
  const since = h('input', { id: 'audit-since', name: 'since', type: 'date' })
  const until = h('input', { id: 'audit-until', name: 'until', type: 'date' })
  const status = h('p', { id: 'audit-status', role: 'status', 'aria-live': 'polite' })
  const body = h('tbody', {})
  const more = h('button', { type: 'button', class: 'btn', id: 'audit-more', hidden: true, onclick: () => load(true) }, t('audit.more'))
  const download = h('button', { type: 'button', class: 'btn', id: 'audit-csv', onclick: () => downloadCsv() }, t('audit.csv'))
  let before = null
  let actionsKnown = false

  function query () {
    const params = new URLSearchParams()
    if (action.value) params.set('action', action.value)
    if (actor.value.trim()) params.set('actor', actor.value.trim())
    if (target.value.trim()) params.set('target', target.value.trim())
    if (since.value) params.set('since', since.value)
    // "Jusqu'au" a day includes that day: the server's until is excluded.
    if (until.value) params.set('until', new Date(Date.parse(until.value) + 86400000).toISOString().slice(0, 10))
    return params
  }

  function row (e) {
    const detail = Object.entries(e.detail ?? {}).map(([k, v]) => `${k} : ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ')
    return h('tr', { 'data-action': e.action, 'data-id': String(e.id) },
      h('td', {}, h('time', { datetime: new Date(e.at * 1000).toISOString() }, dateTime(e.at))),
      h('td', {}, h('code', {}, e.actor)),
      h('td', {}, t('audit.actions.' + e.action, {}, e.action)),
      h('td', {}, e.target ? h('code', {}, e.target) : '—'),
      h('td', {}, detail || '—'),
      h('td', {}, h('code', {}, e.node)))
  }

  async function load (next = false) {
    const params = query()
    if (!next) before = null
    if (before) params.set('before', String(before))
    params.set('limit', '50')
    fill(status, t('loading'))
    try {
      const data = await api(`/api/admin/audit?${params}`)
      if (!actionsKnown) {
        actionsKnown = true
        action.append(...data.actions.map((a) => h('option', { value: a }, t('audit.actions.' + a, {}, a))))
      }
      if (!next) body.replaceChildren()
      body.append(...data.entries.map(row))
      before = data.next_before
      more.hidden = before === null
      fill(status, body.children.length ? t('audit.count', { n: formatNumber(body.children.length) }) : t('audit.none'))
    } catch (error) {
      fill(status, h('span', { class: 'form-error' }, t('feedback.error', { error: error.message })))
    }
  }

  // A plain link cannot carry the bearer token: fetch the CSV, then hand it to the
  // browser as a file.
  async function downloadCsv () {
    download.disabled = true
    try {
      const response = await fetch(`/api/admin/audit.csv?${query()}`, { headers: { Authorization: `Bearer ${session.token()}` } })
      if (!response.ok) throw new Error((await response.json().catch(() => ({}))).message ?? `HTTP ${response.status}`)
      const name = /filename="([^"]+)"/.exec(response.headers.get('content-disposition') ?? '')?.[1] ?? 'atelier-audit.csv'
      const link = h('a', { href: URL.createObjectURL(await response.blob()), download: name, id: 'audit-csv-file', hidden: true })
      document.body.append(link)
      link.click()
      setTimeout(() => { URL.revokeObjectURL(link.href); link.remove() }, 1000)
      fill(status, t('audit.downloaded', { name: enc(name) }))
    } catch (error) {
      fill(status, h('span', { class: 'form-error' }, t('feedback.error', { error: error.message })))
    } finally {
      download.disabled = false
    }
  }

  const form = h('form', { class: 'audit-filters', id: 'audit-filters', onsubmit: (e) => { e.preventDefault(); load() } },
    field('audit-action', t('audit.action'), action),
    field('audit-actor', t('audit.actor'), actor),
    field('audit-target', t('audit.target'), target),
    field('audit-since', t('audit.since'), since),
    field('audit-until', t('audit.until'), until),
    h('p', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary', id: 'audit-filter' }, t('audit.filter')), download))
  const element = h('section', { class: 'panel', 'aria-labelledby': 'audit-title', id: 'audit' },
    h('h2', { id: 'audit-title' }, t('audit.title')),
    h('p', { class: 'help' }, t('audit.lead')),
    form, status,
    h('div', { class: 'table-scroll' }, h('table', { class: 'works-table audit-table', id: 'audit-table' },
      h('caption', {}, t('audit.caption')),
      h('thead', {}, h('tr', {}, ['audit.when', 'audit.actor', 'audit.action', 'audit.target', 'audit.detail', 'audit.node'].map((k) => h('th', { scope: 'col' }, t(k))))),
      body)),
    more)
  return { element, load }
}
