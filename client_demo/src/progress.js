// The pieces of the teacher's class console (screens/classpage.js): one block per doc of a
// group — the doc's beginning, its size, who wrote how much, an activity sparkline — built
// once and updated in place from the overview and from `progress` events (docs/protocol.md,
// "`event` kind `progress`"), so that a focused link inside is never replaced under the
// keyboard.
//
// Nothing here relies on colour alone: each contribution segment has a pattern and a
// white separator, and the same pattern, the name and the numbers are written out beside
// the bar; the sparkline's figure is written out as text.

import { colorOf, fill, h, svg } from './dom.js'
import { ago, t, tn } from './i18n.js'

/** Minutes in an activity array (the last hour, oldest first). */
export const MINUTES = 60
/** A group whose last edit is older than this (while something is written) is flagged idle. */
export const IDLE_AFTER_S = 600
/** Patterns drawn over the contribution colours (style.css `.pat-N`). */
const PATTERNS = 4

/**
 * The activity array as seen now. The server's array ends with the minute of `at` (its
 * clock); each minute boundary crossed since shifts it left (nothing was reported since,
 * so nothing happened). Only the sub-minute phase of `at` and the local time elapsed since
 * `receivedAt` are used, so a client clock that is off does not skew the chart.
 * @param {number[]} activity edits per minute, oldest first
 * @param {number} at unix seconds when the server computed it (server clock)
 * @param {number} receivedAt unix seconds when it arrived (local clock)
 */
export function activityNow (activity, at, receivedAt, now = Date.now() / 1000) {
  const a = Array.isArray(activity) ? activity.slice(-MINUTES).map((n) => Math.max(0, Number(n) || 0)) : []
  while (a.length < MINUTES) a.unshift(0)
  const phase = ((at % 60) + 60) % 60
  const shift = Math.max(0, Math.floor((phase + Math.max(0, now - receivedAt)) / 60))
  if (shift >= MINUTES) return new Array(MINUTES).fill(0)
  return [...a.slice(shift), ...new Array(shift).fill(0)]
}

export const sum = (values) => values.reduce((acc, n) => acc + n, 0)

/** An inline SVG bar sparkline of per-minute counts (decorative: the text says the figure). */
export function sparkline (counts) {
  const width = counts.length * 3
  const height = 24
  const max = Math.max(1, ...counts)
  const bars = counts.map((n, i) => {
    if (!n) return null
    const barHeight = Math.max(2, Math.round((n / max) * (height - 2)))
    return svg('rect', { x: i * 3, y: height - barHeight, width: 2, height: barHeight, rx: 0.5 })
  })
  return svg('svg', {
    class: 'spark', viewBox: `0 0 ${width} ${height}`, width, height, 'aria-hidden': 'true', focusable: 'false'
  }, svg('rect', { class: 'spark-base', x: 0, y: height - 1, width, height: 1 }), bars)
}

/** Users who wrote something, biggest share first (the order of the bar and its legend). */
export function contributors (users) {
  return [...(users ?? [])]
    .filter((u) => (u.inserted ?? 0) > 0 || (u.edits ?? 0) > 0)
    .sort((a, b) => (b.inserted ?? 0) - (a.inserted ?? 0) || String(a.name).localeCompare(String(b.name)))
}

/** Shares in whole percents that add up to 100 (largest remainders). */
export function shares (values) {
  const total = sum(values)
  if (!total) return values.map(() => 0)
  const raw = values.map((v) => (v * 100) / total)
  const floors = raw.map(Math.floor)
  let left = 100 - sum(floors)
  const order = raw.map((r, i) => [r - floors[i], i]).sort((a, b) => b[0] - a[0])
  for (const [, i] of order) { if (left <= 0) break; floors[i]++; left-- }
  return floors
}

/** A swatch of the given user's colour and the n-th pattern (matches its bar segment). */
function swatch (userId, index) {
  return h('span', { class: `swatch pat-${index % PATTERNS}`, style: `background-color:${colorOf(userId)}`, 'aria-hidden': 'true' })
}

/** One doc of one group, as a block of the group's card. */
export class DocBlock {
  /**
   * @param {{groupId: string, groupName: string, name: string}} o
   */
  constructor ({ groupId, groupName, name }) {
    this.groupId = groupId
    this.name = name
    this.figures = null
    const id = `doc-${groupId}-${name}`
    this.title = h('h4', { id, class: 'doc-block-title' }, h('span', { class: 'doc-icon', 'aria-hidden': 'true' }, '¶'), ' ', name)
    this.size = h('span', { class: 'doc-size muted-text' })
    this.last = h('p', { class: 'doc-last muted-text' })
    this.preview = h('p', { class: 'doc-preview' })
    this.bar = h('div', { class: 'contrib-bar', 'aria-hidden': 'true' })
    this.list = h('ul', { class: 'contrib-list' })
    this.sparkHost = h('span', { class: 'spark-host' })
    this.activityText = h('span', { class: 'activity-text' })
    this.element = h('article', { class: 'doc-block', 'data-doc': name, 'aria-labelledby': id },
      h('div', { class: 'doc-block-head' }, this.title, this.size),
      h('p', { class: 'sr-only' }, t('console.preview')),
      this.preview,
      this.last,
      h('p', { class: 'sub' }, t('console.contrib')),
      this.bar, this.list,
      h('p', { class: 'sub' }, t('console.activity')),
      h('p', { class: 'activity' }, this.sparkHost, this.activityText),
      h('p', { class: 'doc-open' }, h('a', { class: 'btn btn-small', href: `#/room/${encodeURIComponent(groupId)}/${encodeURIComponent(name)}` },
        t('console.openDoc', { doc: name }), h('span', { class: 'sr-only' }, ` (${groupName})`))))
  }

  /**
   * New figures: `{words, chars, preview, last_edit, users, activity}` and, for a progress
   * event, its `at` (server clock). An event older than the last one applied is ignored
   * (events are only compared with events: the overview has no `at`, and the two clocks
   * need not agree).
   */
  update (figures) {
    const now = Date.now() / 1000
    if (typeof figures.at === 'number') {
      if (this.eventAt !== undefined && figures.at < this.eventAt) return false
      this.eventAt = figures.at
    }
    this.figures = { ...figures, at: figures.at ?? now, receivedAt: now }
    const { words = 0, chars = 0, preview = '' } = figures
    this.size.textContent = `${tn('console.words', words)} · ${tn('console.chars', chars)}`
    this.element.dataset.words = String(words)
    if (preview && chars > 0) {
      this.preview.classList.remove('muted-text')
      this.preview.textContent = preview
    } else {
      this.preview.classList.add('muted-text')
      this.preview.textContent = t('console.empty')
    }
    this.renderContributions()
    this.tick()
    return true
  }

  renderContributions () {
    const people = contributors(this.figures.users)
    const percents = shares(people.map((u) => u.inserted ?? 0))
    const segments = people.map((u, i) => (u.inserted ?? 0) > 0 && h('span', {
      class: `seg pat-${i % PATTERNS}`,
      style: `flex-grow:${u.inserted};background-color:${colorOf(u.id)}`,
      title: `${u.name} — ${t('console.share', { share: percents[i] })}`,
      'data-user': u.id
    }))
    fill(this.bar, segments)
    this.bar.hidden = !people.some((u) => (u.inserted ?? 0) > 0)
    if (!people.length) {
      fill(this.list, h('li', { class: 'muted-text' }, t('console.contribNone')))
      return
    }
    fill(this.list, people.map((u, i) => h('li', {
      'data-user': u.id, 'data-inserted': String(u.inserted ?? 0)
    }, swatch(u.id, i),
    h('span', { class: 'contrib-name' }, u.name || u.id),
    h('span', { class: 'contrib-figures' },
      `${t('console.share', { share: percents[i] })} · ${tn('console.inserted', u.inserted ?? 0)}, ` +
      `${tn('console.deleted', u.deleted ?? 0)}, ${tn('console.edits', u.edits ?? 0)}`))))
  }

  /** Re-render what depends on the clock (called by the console's ticker too). */
  tick (now = Date.now() / 1000) {
    if (!this.figures) return
    const lastEdit = this.figures.last_edit
    this.last.textContent = lastEdit ? t('console.lastEdit', { when: ago(lastEdit) }) : t('console.neverEdited')
    const counts = activityNow(this.figures.activity, this.figures.at, this.figures.receivedAt, now)
    fill(this.sparkHost, sparkline(counts))
    this.activityText.textContent = tn('console.activityText', sum(counts))
  }
}

/** "inactif depuis 12 min" when the group wrote something and nothing for IDLE_AFTER_S. */
export function idleText (docs, now = Date.now() / 1000) {
  const figures = docs.filter(Boolean)
  if (!figures.some((f) => (f.chars ?? 0) > 0)) return null
  const last = Math.max(0, ...figures.map((f) => f.last_edit ?? 0))
  if (!last) return null
  const idle = now - last
  if (idle <= IDLE_AFTER_S) return null
  return idle < 3600 ? t('console.inactiveMin', { n: Math.floor(idle / 60) }) : t('console.inactiveHour', { n: Math.floor(idle / 3600) })
}

/** The group's students who have no edit in any of its docs. */
export function notContributed (students, docs) {
  const wrote = new Set()
  for (const f of docs) {
    for (const u of f?.users ?? []) if ((u.inserted ?? 0) > 0 || (u.edits ?? 0) > 0) wrote.add(u.id)
  }
  return { anybody: wrote.size > 0, missing: students.filter((s) => !wrote.has(s.id)) }
}
