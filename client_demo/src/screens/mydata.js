// "Mes données" (#/donnees): what Atelier holds about me, by class of data, with how long
// each is kept (GET /api/me/data); "Télécharger mes données" (the export ZIP); "Demander
// l'effacement" (the admins then run it). A parent sees the same for each child. An admin
// finds a person (GET /api/admin/privacy/people), sees the pending requests, exports and
// erases — after a confirmation — and reads the erasure's report.

import { ApiError, api, download, enc } from '../api.js'
import { h, fill } from '../dom.js'
import { dateTime, formatNumber, t } from '../i18n.js'

const COUNTS = ['chat', 'doc_updates', 'versions', 'works', 'notifications', 'sessions', 'memberships', 'audit']

function failure (error) {
  const message = error instanceof ApiError && error.status === 403 ? t('error.forbidden') : error.message
  return h('p', { class: 'banner banner-error' }, t('data.failed', { error: message }))
}

async function exportTo (status, path, userId) {
  fill(status, h('p', {}, t('data.preparing')))
  try {
    const size = await download(path, `atelier-donnees-${userId}.zip`)
    fill(status, h('p', { class: 'banner banner-info', 'data-done': 'export' }, t('data.downloaded', { kb: formatNumber(Math.ceil(size / 1024)) })))
  } catch (error) {
    fill(status, failure(error))
  }
}

function countsTable (person, id) {
  return h('table', { class: 'works-table data-counts', id },
    h('caption', {}, t('data.countsCaption', { name: person.name })),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('data.class')), h('th', { scope: 'col' }, t('data.count')))),
    h('tbody', {}, COUNTS.map((key) => h('tr', { 'data-class': key },
      h('th', { scope: 'row' }, t('data.counts.' + key)),
      h('td', {}, formatNumber(person.counts[key] ?? 0))))))
}

function retentionTable (retention) {
  return h('table', { class: 'works-table data-retention', id: 'data-retention' },
    h('caption', {}, t('data.retentionCaption')),
    h('thead', {}, h('tr', {}, ['data.class', 'data.kept', 'data.note'].map((k) => h('th', { scope: 'col' }, t(k))))),
    h('tbody', {}, retention.map((c) => h('tr', { 'data-class': c.key },
      h('th', { scope: 'row' }, t('data.classes.' + c.key)),
      h('td', {}, c.days ? t('data.days', { n: formatNumber(c.days) }) : t('data.forever')),
      h('td', {}, t('data.notes.' + c.key))))))
}

/** One person's panel: their counts, download, request erasure. */
function personPanel (person, { self }) {
  const id = `person-${person.id}`
  const status = h('div', { role: 'status', 'aria-live': 'polite', class: 'data-status' })
  const exportPath = self ? '/api/me/data/export' : `/api/people/${enc(person.id)}/data/export`
  const requested = (at) => h('p', { class: 'banner banner-info', 'data-requested': 'yes' }, t('data.requestedAt', { when: dateTime(at) }))
  const requestArea = h('div', {}, person.erasure_requested_at ? requested(person.erasure_requested_at) : null)
  const ask = h('button', {
    type: 'button',
    class: 'btn',
    id: `erase-request-${person.id}`,
    disabled: Boolean(person.erasure_requested_at),
    onclick: async () => {
      if (!window.confirm(t(self ? 'data.requestConfirmSelf' : 'data.requestConfirmChild', { name: person.name }))) return
      ask.disabled = true
      try {
        const r = await api(`/api/people/${enc(person.id)}/data/erasure-request`, { method: 'POST', body: {} })
        fill(requestArea, requested(r.requested_at))
      } catch (error) {
        ask.disabled = false
        fill(requestArea, failure(error))
      }
    }
  }, t('data.request'))
  return h('section', { class: 'panel', 'aria-labelledby': `${id}-title`, 'data-person': person.id },
    h('h2', { id: `${id}-title` }, self ? t('data.mine') : t('data.child', { name: person.name })),
    countsTable(person, `${id}-counts`),
    h('p', { class: 'actions' },
      h('button', { type: 'button', class: 'btn btn-primary', id: `export-${person.id}`, onclick: () => exportTo(status, exportPath, person.id) }, t('data.export')),
      ask),
    h('p', { class: 'help' }, t('data.requestHelp')),
    status, requestArea)
}

function reportTable (report) {
  return h('div', { class: 'banner banner-info', id: 'erase-report', 'data-user': report.user_id },
    h('p', {}, t('data.erased', { id: report.user_id, s: formatNumber(report.seconds) })),
    h('table', { class: 'works-table' },
      h('caption', {}, t('data.reportCaption')),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('data.class')), h('th', { scope: 'col' }, t('data.rows')))),
      h('tbody', {}, Object.entries(report.counts).map(([key, n]) => h('tr', { 'data-class': key },
        h('th', { scope: 'row' }, t('data.report.' + key)), h('td', {}, formatNumber(n)))),
      h('tr', {}, h('th', { scope: 'row' }, t('data.report.sockets')), h('td', {}, formatNumber(report.sockets_closed))))))
}

/** The admin's side: pending requests, find a person, export, erase (confirmed). */
async function adminPanel () {
  const result = h('div', { id: 'admin-data-result', role: 'status', 'aria-live': 'polite' })
  const requests = h('div', { id: 'erase-requests' })
  const found = h('div', { id: 'people-found' })

  function personRow (p, extra) {
    const confirm = h('span', {})
    const erase = h('button', {
      type: 'button',
      class: 'btn btn-danger',
      'data-erase': p.id,
      onclick: () => fill(confirm, h('span', { class: 'confirm-erase' },
        t('data.eraseConfirm', { name: p.name, id: p.id }), ' ',
        h('button', {
          type: 'button',
          class: 'btn btn-danger',
          'data-confirm-erase': p.id,
          onclick: async (event) => {
            event.currentTarget.disabled = true
            fill(result, h('p', {}, t('data.erasing')))
            try {
              const report = await api(`/api/admin/privacy/erase/${enc(p.id)}`, { method: 'POST', body: { confirm: p.id } })
              fill(result, reportTable(report))
              await refresh()
              fill(found)
            } catch (error) {
              fill(result, failure(error))
            }
          }
        }, t('data.eraseYes')),
        ' ',
        h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => fill(confirm) }, t('data.cancel'))))
    }, t('data.erase'), h('span', { class: 'sr-only' }, ` — ${p.name}`))
    return h('li', { 'data-person': p.id },
      h('strong', {}, p.name), ' ', h('span', { class: 'muted-text' }, `(${p.id}, ${t('role.' + p.role)})`), extra, ' ',
      h('button', { type: 'button', class: 'btn', 'data-export': p.id, onclick: () => exportTo(result, `/api/people/${enc(p.id)}/data/export`, p.id) },
        t('data.exportOf'), h('span', { class: 'sr-only' }, ` — ${p.name}`)),
      ' ', erase, ' ', confirm)
  }

  async function refresh () {
    const data = await api('/api/admin/privacy/requests')
    fill(requests, data.requests.length === 0
      ? h('p', { class: 'muted-text' }, t('data.noRequests'))
      : h('ul', { class: 'people-list' }, data.requests.map((r) => personRow(
        { id: r.user_id, name: r.name, role: r.role },
        h('span', { class: 'muted-text' }, ' — ', t('data.requestedBy', { who: r.requested_by, when: dateTime(r.requested_at) }))))))
  }

  const query = h('input', { id: 'people-q', type: 'search', maxlength: '64', autocomplete: 'off', required: true })
  const form = h('form', {
    role: 'search',
    onsubmit: async (event) => {
      event.preventDefault()
      const q = query.value.trim()
      if (!q) return
      try {
        const data = await api(`/api/admin/privacy/people?q=${enc(q)}`)
        fill(found, data.people.length === 0
          ? h('p', {}, t('data.nobody'))
          : h('ul', { class: 'people-list' }, data.people.map((p) => personRow(p, null))))
      } catch (error) {
        fill(found, failure(error))
      }
    }
  },
  h('div', { class: 'form-field' }, h('label', { for: 'people-q' }, t('data.find')), query),
  h('p', { class: 'actions' }, h('button', { type: 'submit', class: 'btn', id: 'people-search' }, t('data.search'))))
  await refresh()
  return h('div', {},
    h('section', { class: 'panel', 'aria-labelledby': 'requests-title' },
      h('h2', { id: 'requests-title' }, t('data.requests')), requests),
    h('section', { class: 'panel', 'aria-labelledby': 'find-title' },
      h('h2', { id: 'find-title' }, t('data.findTitle')), form, found),
    result)
}

export async function renderMyData (main) {
  const data = await api('/api/me/data')
  const me = data.me
  const title = t('data.title')
  const admin = me.role === 'admin'
  main.replaceChildren(h('div', { class: 'page my-data' },
    h('h1', { tabindex: '-1' }, title),
    h('p', { class: 'lead' }, t('data.lead')),
    admin ? await adminPanel() : personPanel(me, { self: true }),
    data.children.map((child) => personPanel(child, { self: false })),
    h('section', { class: 'panel', 'aria-labelledby': 'retention-title' },
      h('h2', { id: 'retention-title' }, t('data.retention')),
      retentionTable(data.retention),
      h('p', { class: 'help' }, t('data.erasureExplained')))))
  return { title }
}
