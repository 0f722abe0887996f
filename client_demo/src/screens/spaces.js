// "Mes espaces": the user's class(es) and groups, from GET /api/me.

import { api, enc, session } from '../api.js'
import { h } from '../dom.js'
import { t } from '../i18n.js'

export async function renderSpaces (main) {
  const me = await api('/api/me')
  session.set({ ...session.get(), me })
  const classes = me.rooms.filter((r) => r.kind === 'class')
  const groups = me.rooms.filter((r) => r.kind === 'group')
  const teacher = me.role === 'teacher'

  const roomCard = (room, extra) => h('li', { class: 'space-card' },
    h('span', { class: `kind kind-${room.kind}` }, t('spaces.kind.' + room.kind)),
    h('h3', {}, h('a', { href: `#/room/${enc(room.id)}`, class: 'stretched' }, room.name)),
    h('p', { class: 'muted-text' }, room.id),
    extra)

  const sections = []
  if (teacher) {
    for (const c of classes) {
      const mine = groups.filter((g) => g.class_id === c.id)
      sections.push(h('section', { class: 'spaces-section', 'aria-labelledby': `sec-${c.id}` },
        h('h2', { id: `sec-${c.id}` }, c.name),
        h('p', { class: 'actions' },
          h('a', { class: 'btn btn-primary', href: `#/class/${enc(c.id)}` }, t('spaces.classPage')), ' ',
          h('a', { class: 'btn', href: `#/class/${enc(c.id)}/travaux` }, t('spaces.assignments'), h('span', { class: 'sr-only' }, ` — ${c.name}`)), ' ',
          h('a', { class: 'btn', href: `#/class/${enc(c.id)}/groupes` }, t('spaces.groupsPage'), h('span', { class: 'sr-only' }, ` — ${c.name}`)), ' ',
          h('a', { class: 'btn', href: `#/room/${enc(c.id)}` }, t('class.openClass'))),
        mine.length > 0 && h('ul', { class: 'space-grid' }, mine.map((g) => roomCard(g)))))
    }
  } else {
    if (classes.length) {
      sections.push(h('section', { class: 'spaces-section', 'aria-labelledby': 'sec-class' },
        h('h2', { id: 'sec-class' }, classes.length > 1 ? t('spaces.classes') : t('spaces.class')),
        h('ul', { class: 'space-grid' }, classes.map((c) => roomCard(c)))))
    }
    if (groups.length) {
      sections.push(h('section', { class: 'spaces-section', 'aria-labelledby': 'sec-groups' },
        h('h2', { id: 'sec-groups' }, t('spaces.groups')),
        h('ul', { class: 'space-grid' }, groups.map((g) => roomCard(g)))))
    }
  }
  const todoLink = (me.role === 'student' || me.role === 'parent') ? h('p', { class: 'actions' },
    h('a', { class: 'btn btn-primary', href: '#/todo', id: 'spaces-todo' }, me.role === 'parent' ? t('nav.children') : t('nav.todo')))
    : me.role === 'admin' && h('p', { class: 'actions' }, h('a', { class: 'btn btn-primary', href: '#/admin', id: 'spaces-admin' }, t('nav.admin')))
  main.replaceChildren(
    h('div', { class: 'page' },
      h('h1', { tabindex: '-1' }, t('spaces.title')),
      h('p', { class: 'lead' }, t('spaces.hello', { name: me.display_name })),
      todoLink,
      sections.length ? sections : h('p', {}, t('spaces.none'))))
  return { title: t('spaces.title') }
}
