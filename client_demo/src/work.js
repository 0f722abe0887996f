// What the assignment screens share: due dates in the viewer's own time zone, a work's
// phase as a tag that reads without colour, the feedback block, and the hand-in button
// with its confirmation (POST /api/works/{id}/hand-in). See docs/protocol.md.

import { api, enc } from './api.js'
import { h, fill } from './dom.js'
import { getLang, t } from './i18n.js'
import { renderMessage } from './markdown.js'

const locale = () => (getLang() === 'en' ? 'en-GB' : 'fr-FR')

/** "jeudi 4 décembre à 18:00" in the viewer's zone, and the zone's name when it is not Paris. */
export function dueText (unixSeconds) {
  const d = new Date(unixSeconds * 1000)
  const text = d.toLocaleString(locale(), { weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit' })
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone
  return zone && zone !== 'Europe/Paris' ? `${text} (${zone})` : text
}

/** "dans 3 h", "dans 2 j", "dépassée": how long is left before a due date. */
export function leftText (unixSeconds, now = Date.now() / 1000) {
  const s = unixSeconds - now
  if (s <= 0) return t('work.past')
  if (s < 3600) return t('work.leftMin', { n: Math.max(1, Math.round(s / 60)) })
  if (s < 86400 * 2) return t('work.leftHour', { n: Math.round(s / 3600) })
  return t('work.leftDay', { n: Math.round(s / 86400) })
}

/** A `datetime-local` value (the viewer's zone) for a unix time. */
export function localInput (unixSeconds) {
  const d = new Date(unixSeconds * 1000)
  const pad = (n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`
}

/** ISO 8601 with the offset, from a `datetime-local` value read in the viewer's zone. */
export function isoFromInput (value) {
  const d = new Date(value)
  if (Number.isNaN(d.getTime())) return null
  return d.toISOString()
}

const ICONS = { not_started: '○', in_progress: '◔', freezing: '…', handed_in: '✓', late: '!', missed: '✕', returned: '★', open: '○' }

/** The phase as a tag: an icon and a word, so it reads without its colour. */
export function phaseTag (phase) {
  return h('span', { class: `phase phase-${phase}`, 'data-phase': phase },
    h('span', { 'aria-hidden': 'true' }, ICONS[phase] ?? '•'), ' ', t('phase.' + phase))
}

/** Instructions (the chat's markdown subset, rendered without innerHTML) and resource links. */
export function instructionsBlock (assignment) {
  return [
    assignment.instructions && h('div', { class: 'instructions' }, renderMessage(assignment.instructions)),
    assignment.resources?.length > 0 && h('ul', { class: 'resources', 'aria-label': t('work.resources') },
      assignment.resources.map((r) => h('li', {}, h('a', { href: r.url, rel: 'noopener noreferrer', target: '_blank' }, r.title || r.url))))
  ]
}

/** The teacher's feedback once returned. */
export function feedbackBlock (work) {
  const f = work.feedback
  if (!work.returned_at || !f || !(f.comment || f.appreciation || f.mark)) return null
  return h('div', { class: 'feedback', 'data-work': work.id },
    h('h4', {}, t('work.feedback')),
    f.appreciation && h('p', {}, h('strong', {}, t('work.appreciation'), ' : '), f.appreciation),
    f.mark && h('p', {}, h('strong', {}, t('work.mark'), ' : '), f.mark),
    f.comment && h('div', { class: 'feedback-comment' }, renderMessage(f.comment)))
}

/**
 * "Rendre le travail", then a confirmation in place ("Le document ne pourra plus être
 * modifié"): Confirmer / Annuler, the focus moved to the question and back. Calls
 * `onDone(work)` with what the server answered.
 */
export function handInControl (work, { title, onDone }) {
  const slot = h('div', { class: 'handin', 'data-work': work.id })
  const status = h('p', { class: 'form-error', role: 'alert' })
  const ask = () => {
    slot.dataset.busy = 'true' // the screen does not redraw this control while it asks
    const question = h('p', { class: 'handin-question', tabindex: '-1', id: `handin-q-${work.id}` },
      t('handin.confirm', { title }))
    const yes = h('button', {
      type: 'button', class: 'btn btn-primary', 'data-action': 'confirm-hand-in',
      onclick: async () => {
        yes.disabled = true; no.disabled = true
        status.textContent = ''
        try {
          const res = await api(`/api/works/${enc(work.id)}/hand-in`, { method: 'POST' })
          fill(slot, h('p', { class: 'handin-done', role: 'status' }, t('handin.done')))
          delete slot.dataset.busy
          onDone?.(res.work)
        } catch (error) {
          status.textContent = error.status === 409 ? t('handin.conflict') : t('handin.error', { error: error.message })
          yes.disabled = false; no.disabled = false
        }
      }
    }, t('handin.yes'))
    const no = h('button', { type: 'button', class: 'btn', onclick: () => { delete slot.dataset.busy; idle(); slot.querySelector('button')?.focus() } }, t('handin.no'))
    fill(slot, h('div', { class: 'handin-box', role: 'group', 'aria-labelledby': question.id },
      question, h('p', { class: 'help' }, t('handin.help')), h('div', { class: 'actions' }, yes, no), status))
    question.focus()
  }
  const idle = () => fill(slot, h('button', { type: 'button', class: 'btn btn-primary', 'data-action': 'hand-in', onclick: ask }, t('handin.button')))
  idle()
  return slot
}
