// The limits as a pupil meets them, in a real browser: Atelier with a small document size
// (ATELIER_MAX_DOC_BYTES) and few documents per room (ATELIER_MAX_DOCS_PER_ROOM). Started
// by tests/browser/test_limits_client.py with the usual BROWSER_CONFIG (helpers.mjs).
// A paste past the size limit is refused: the page says so in French, reloads the doc as
// the server has it and lets her go on; a doc past the room's limit is refused for good.

import {
  assert, axe, consoleProblems, docText, openRoom, run, scenario, shot, signInDemo, switchDoc,
  typeInEditor, waitSaved
} from './helpers.mjs'

async function main () {
  await scenario('doc_too_large', async () => {
    const lea = await signInDemo('s-01')
    const hugo = await signInDemo('s-02')
    await openRoom(lea.page, '2nde-a-g1')
    await openRoom(hugo.page, '2nde-a-g1')
    await typeInEditor(lea.page, 'Début du rapport.')
    await waitSaved(lea.page)
    await hugo.page.locator('#editor .doc-text', { hasText: 'Début du rapport.' }).waitFor()
    // A paste of ~100 KB into a doc limited to 64 KiB.
    await lea.page.evaluate(() => {
      const editor = window.__atelier.current.docSession().editor
      editor.commands.insertContent('copié '.repeat(17000))
    })
    await lea.page.locator('#readonly-banner', { hasText: 'a atteint sa taille maximale' }).waitFor()
    // Reloaded as the server has it: the paste is gone, on her screen as on Hugo's.
    await lea.page.locator('#conn-state[data-state="online"]').waitFor()
    await lea.page.waitForFunction(() => !document.querySelector('#editor .doc-text').textContent.includes('copié'))
    assert((await docText(lea.page)).trim() === 'Début du rapport.', `reloaded: ${(await docText(lea.page)).slice(0, 80)}`)
    assert(!(await docText(hugo.page)).includes('copié'), 'the refused paste never reached Hugo')
    await axe(lea.page, 'room (document too large)')
    await shot(lea.page, '15-document-trop-grand')
    // She goes on writing, and it is saved and shared.
    await typeInEditor(lea.page, ' Suite.')
    await waitSaved(lea.page)
    await hugo.page.locator('#editor .doc-text', { hasText: 'Début du rapport. Suite.' }).waitFor()
    await lea.context.close()
    await hugo.context.close()
  })

  await scenario('room_full', async () => {
    const zoe = await signInDemo('s-07')
    await openRoom(zoe.page, '2nde-a-g2') // "rapport": the room's first doc
    await typeInEditor(zoe.page, 'Premier document.')
    await waitSaved(zoe.page)
    await switchDoc(zoe.page, '2nde-a-g2', 'deux')
    await typeInEditor(zoe.page, 'Deuxième document.')
    await waitSaved(zoe.page)
    await zoe.page.evaluate(() => { location.hash = '#/room/2nde-a-g2/trois' })
    await zoe.page.locator('#readonly-banner', { hasText: 'nombre maximal de documents' }).waitFor()
    await zoe.page.locator('#conn-state[data-state="closed"]').waitFor()
    await zoe.page.locator('#editor .doc-text[contenteditable="false"]').waitFor()
    await axe(zoe.page, 'room (room full)')
    // The room's docs still open.
    await switchDoc(zoe.page, '2nde-a-g2', 'deux')
    await zoe.page.locator('#editor .doc-text', { hasText: 'Deuxième document.' }).waitFor()
    await zoe.context.close()
  })

  await scenario('no_token_in_console', async () => {
    assert(consoleProblems.length === 0, consoleProblems.join('\n'))
  })
}

run(main)
