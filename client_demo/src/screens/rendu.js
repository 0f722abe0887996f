// A rendu, read-only, for the work's students (and a parent, for their own child's
// personal work): GET /api/works/{id}/rendu — the frozen text, when and by whom it was
// handed in, and the teacher's feedback once returned.

import { api, enc, session } from '../api.js'
import { h } from '../dom.js'
import { t } from '../i18n.js'
import { rebuildHtml, textParagraphs } from '../history.js'
import { dueText, feedbackBlock } from '../work.js'

export async function renderRendu (main, { workId }) {
  const me = session.get()?.me
  const data = await api(`/api/works/${enc(workId)}/rendu`)
  const work = data.work
  const title = data.version.name || t('rendu.heading')
  const body = typeof data.html === 'string' && data.html.trim() ? rebuildHtml(data.html) : textParagraphs(data.text ?? '')
  main.replaceChildren(h('div', { class: 'page rendu-page' },
    h('nav', { 'aria-label': t('nav.breadcrumb'), class: 'crumbs' },
      h('ol', {}, h('li', {}, h('a', { href: '#/' }, t('nav.spaces'))),
        h('li', {}, h('a', { href: '#/todo' }, me?.role === 'parent' ? t('nav.children') : t('nav.todo'))),
        h('li', { 'aria-current': 'page' }, title))),
    h('h1', { tabindex: '-1' }, title),
    h('p', { class: 'muted-text' }, work.submitted_at
      ? t('rendu.handedIn', { when: dueText(work.submitted_at) })
      : t('rendu.frozen', { when: dueText(data.version.created_at) })),
    h('div', { class: 'panel rendu-body doc-text', id: 'rendu-body', role: 'document', tabindex: '0', 'aria-label': t('rendu.label') }, body),
    feedbackBlock(work)))
  return { title }
}
