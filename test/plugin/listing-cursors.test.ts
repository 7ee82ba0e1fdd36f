/**
 * The paged, filtered listing (GET /api/organizations/{id}/phone-numbers with
 * limit, cursor and filters) through the plugin on a real database: tampered
 * cursors and bad limits, and a cursor across limit changes and label case.
 * Every answer is checked against the stored user documents
 * (listing-helper.ts computes the expected listing straight from them).
 */
import t from 'tap'
import Fastify from 'fastify'
import { MongoClient, ObjectId, type Document } from 'mongodb'
import orgPhoneNumbers from '../../plugins/phone-numbers/index.js'
import { createListCursorCodec, cursorKey } from '../../plugins/phone-numbers/list-cursor.js'
import { build, TEST_BACKEND, TEST_SECRET } from '../helper.js'
import { uriForDatabase } from '../helper-database.js'
import { expectedListing, getPage, listUrl, seedOrganization, snapshot, walk, type Filters, type Page } from './listing-helper.js'

// FerretDB seeds and scans slowly (the sparse-filter walk reads 1,150 users a page), and
// the suite runs files in parallel on 2 cores: tap's 30 s default was seen to run out there.
// FerretDB 1.24 scans the users collection for every page (it serves only a bare _id from an index): slow on a loaded machine.
t.setTimeout(TEST_BACKEND === 'ferretdb' ? 900_000 : 300_000)

t.test('tampered cursors and bad limits answer 400 with the error only, and nothing is read or written', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 6, 40)
  const org = seeded.organizationId
  const filters: Filters = { provider: 'twilio' }

  // A second app on the same database with command monitoring: shows which
  // requests reach the listing's queries.
  const monitored = new MongoClient(uriForDatabase(built.db.databaseName), { monitorCommands: true })
  await monitored.connect()
  t.teardown(() => monitored.close())
  const app = Fastify({ logger: false })
  await app.register(orgPhoneNumbers, { db: monitored.db(built.db.databaseName), auth: { secret: TEST_SECRET } })
  await app.ready()
  t.teardown(() => app.close())
  let listingQueries = 0
  monitored.on('commandStarted', (event) => {
    const command = event.command as Document
    if (event.commandName === 'find' && (command['find'] === 'organizations' || (command['find'] === 'users' && JSON.stringify(command['filter'] ?? {}).includes('organizationId')))) listingQueries++
  })

  const first = await getPage(app, built.authorization, listUrl(org, filters, 2))
  t.ok(listingQueries > 0, 'a genuine page reaches the database (the monitor sees it)')
  const cursor = first.nextCursor!
  t.type(cursor, 'string', 'the first page has a cursor')
  const [payload, signature] = cursor.split('.') as [string, string]

  // Genuine cursors of another organization (same filters) and of other filters (same organization).
  const foreignPage = await getPage(app, built.authorization, listUrl(built.fixture.otherOrganizationId, filters, 1))
  t.type(foreignPage.nextCursor, 'string', 'the other organization\'s first page has a cursor')
  const otherFilterCursors: Array<[string, Filters]> = []
  for (const [issued, used] of [
    [{ provider: 'sinch' }, filters],
    [{}, filters],
    [{ provider: 'twilio', isDefault: 'true' }, filters],
    [{ provider: 'twilio', label: 'main' }, { provider: 'twilio', label: 'mai' }],
    [filters, { ...filters, targetUserId: seeded.userIds[0]! }]
  ] satisfies Array<[Filters, Filters]>) {
    const page = await getPage(app, built.authorization, listUrl(org, issued, 1))
    t.type(page.nextCursor, 'string', `${JSON.stringify(issued)} has a cursor`)
    otherFilterCursors.push([page.nextCursor!, used])
  }
  const payloadFields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
  const editedPayload = Buffer.from(JSON.stringify({ ...payloadFields, u: seeded.crossUserId })).toString('base64url')
  const otherKeyCursor = createListCursorCodec(cursorKey(undefined, 'another-secret-that-is-at-least-32-characters')).encode({ organizationId: org, filters: { targetUserId: undefined, provider: 'twilio', phoneNumberPrefix: undefined, label: undefined, isInboundEnabled: undefined, isDefault: undefined } }, { userId: new ObjectId(seeded.crossUserId) })

  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const flip = (text: string, i: number, bit: number): string => text.slice(0, i) + B64[B64.indexOf(text[i]!) ^ bit]! + text.slice(i + 1)
  const cases: Array<[string, string, Filters, string]> = []
  for (let i = 0; i < payload.length; i++) {
    for (const bit of [1, 32]) cases.push([`payload character ${i + 1} of ${payload.length}, bit ${bit}`, org, filters, `${flip(payload, i, bit)}.${signature}`])
  }
  for (let i = 0; i < signature.length; i++) {
    for (const bit of [1, 32]) cases.push([`signature character ${i + 1} of ${signature.length}, bit ${bit}`, org, filters, `${payload}.${flip(signature, i, bit)}`])
  }
  cases.push(
    ['a cursor of another organization, same filters', org, filters, foreignPage.nextCursor!],
    ...otherFilterCursors.map(([other, used], i): [string, string, Filters, string] => [`a cursor of other filters #${i + 1}`, org, used, other]),
    ['this cursor used on the other organization', built.fixture.otherOrganizationId, filters, cursor],
    ['payload edited to another user id, signature kept', org, filters, `${editedPayload}.${signature}`],
    ['signed with another key', org, filters, otherKeyCursor],
    ['garbage', org, filters, 'garbage'],
    ['garbage with a dot', org, filters, 'not-a.cursor'],
    ['characters outside base64url', org, filters, '%%%!!!'],
    ['three parts', org, filters, `${cursor}.${signature}`],
    ['an empty string', org, filters, ''],
    ['a too-long string', org, filters, 'A'.repeat(513)],
    ['a genuine cursor made too long', org, filters, `${payload}${'A'.repeat(512)}.${signature}`],
    ['base64url of JSON without a signature', org, filters, Buffer.from(JSON.stringify({ v: 1, u: seeded.userIds[0] })).toString('base64url')],
    ['base64 of JSON without a signature', org, filters, Buffer.from(JSON.stringify({ v: 1, u: seeded.userIds[0], n: '+14165550100', p: 'twilio' })).toString('base64')],
    ['the payload alone', org, filters, payload],
    ['the signature alone', org, filters, signature]
  )

  const before = await snapshot(built.db)
  const seededIds = [...seeded.userIds, seeded.crossUserId, seeded.labelsUserId, ...seeded.foreignUserIds]
  const problems: string[] = []
  const queried: string[] = []

  async function expectValidationError (what: string, url: string, detailsPattern: RegExp): Promise<void> {
    const queriesBefore = listingQueries
    const response = await app.inject({ method: 'GET', url, headers: { authorization: built.authorization } })
    if (response.statusCode === 400 && listingQueries !== queriesBefore) queried.push(`${what}: ${listingQueries - queriesBefore} listing queries before the 400`)
    if (response.statusCode !== 400) {
      problems.push(`${what}: ${response.statusCode} ${response.body.slice(0, 200)}`)
      return
    }
    const body = response.json() as Record<string, unknown>
    if (Object.keys(body).sort().join() !== 'details,error' || body['error'] !== 'Validation error' || typeof body['details'] !== 'string' || !detailsPattern.test(body['details'])) {
      problems.push(`${what}: unexpected body ${response.body}`)
    }
    if (/\+\d{6,}/.test(response.body) || seededIds.some((id) => response.body.includes(id))) problems.push(`${what}: the error names stored data: ${response.body}`)
  }

  for (const [what, organizationId, used, value] of cases) {
    await expectValidationError(what, listUrl(organizationId, used, 2, value), /cursor/)
  }
  for (const limit of ['0', '1001', '-1', '1.5', 'abc', '10abc']) {
    await expectValidationError(`limit ${limit}`, listUrl(org, filters, limit), /limit/)
    await expectValidationError(`limit ${limit} with a genuine cursor`, listUrl(org, filters, limit, cursor), /limit/)
  }
  t.same(problems, [], `each of ${cases.length} bad cursors and 12 bad limits answers 400 { error: 'Validation error', details } naming the parameter and no stored data`)
  t.same(queried, [], 'none of those refused ran a listing query (refused before any database work)')
  t.same(await snapshot(built.db), before, 'nothing was written')

  // The genuine cursor still works, with its filters, and continues where it left off.
  const expected = await expectedListing(built.db, org, filters)
  const second = await getPage(app, built.authorization, listUrl(org, filters, 2, cursor))
  t.same([...first.phoneNumbers, ...second.phoneNumbers], expected.slice(0, 4), 'the genuine cursor gives the next two entries')
})

t.test('a cursor stays valid when the limit changes between pages; label case does not change the scope', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 7, 40)
  const schedule = [3, 10, 1, 1000, 2, 50]
  for (const filters of [{}, { provider: 'twilio' }, { isDefault: 'false', phoneNumberPrefix: '+1' }] satisfies Filters[]) {
    const { entries, pageSizes } = await walk(built, seeded.organizationId, filters, (page) => schedule[page % schedule.length])
    const expected = await expectedListing(built.db, seeded.organizationId, filters)
    t.ok(pageSizes.length > 2, `${JSON.stringify(filters)}: ${pageSizes.length} pages of limits ${pageSizes.map((_, i) => schedule[i % schedule.length]).join(', ')}`)
    t.same(entries, expected, `${JSON.stringify(filters)}: limits changing page by page, every entry once, in order`)
  }

  // A cursor issued for label=main is the same listing's cursor for label=MAIN (documented: compared ignoring case).
  const expected = await expectedListing(built.db, seeded.organizationId, { label: 'main' })
  t.ok(expected.length >= 3, `${expected.length} entries contain "main"`)
  const first = await getPage(built.app, built.authorization, listUrl(seeded.organizationId, { label: 'main' }, 1))
  const rest = await walk(built, seeded.organizationId, { label: 'MAIN' }, () => 2).catch((error: Error) => error)
  t.notOk(rest instanceof Error, 'a fresh walk with MAIN works')
  const continued = await built.app.inject({ method: 'GET', url: listUrl(seeded.organizationId, { label: 'MAIN' }, 100, first.nextCursor!), headers: { authorization: built.authorization } })
  t.equal(continued.statusCode, 200, 'the cursor of label=main is accepted with label=MAIN')
  t.same([...first.phoneNumbers, ...(continued.json() as Page).phoneNumbers], expected, 'and continues where it left off')
})
