/**
 * The change log through HTTP on a real database: every kind of change yields
 * exactly the expected events (before and after checked field by field against
 * what the API answered and what is stored), repeats and refusals yield none,
 * and paging with small limits returns each event once.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { ObjectId, type Db } from 'mongodb'
import orgPhoneNumbers, { type PhoneNumberEvent } from '../../plugins/phone-numbers/index.js'
import { createSigner, phoneNumbersUrl, seedFixture, TEST_SECRET, type Fixture } from '../helper.js'
import { createTestDatabase } from '../helper-database.js'

t.setTimeout(120_000)
/** Short, so the tests wait little; the log's ordering argument needs it above an insert's time, which it is here. */
const VISIBILITY_MS = 200

interface Setup {
  app: FastifyInstance
  db: Db
  fixture: Fixture
  headers: Record<string, string>
  adminId: string
}

async function setUp (test: Test): Promise<Setup> {
  const { db } = await createTestDatabase(test)
  const fixture = await seedFixture(db)
  const app = Fastify({ logger: false, requestIdHeader: 'x-request-id' })
  await app.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, eventVisibilityDelayMs: VISIBILITY_MS })
  await app.ready()
  test.teardown(() => app.close())
  const signer = await createSigner()
  test.teardown(() => signer.close())
  const authorization = `Bearer ${signer.sign({ sub: fixture.adminId, role: 'SUPERADMIN' })}`
  return { app, db, fixture, headers: { authorization, 'content-type': 'application/json' }, adminId: fixture.adminId }
}

async function send (s: Setup, method: 'POST' | 'DELETE', path: string, body: Record<string, unknown>, requestId: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const response = await s.app.inject({ method, url: path, headers: { ...s.headers, 'x-request-id': requestId }, payload: body })
  return { status: response.statusCode, body: response.json() }
}

/** Every event recorded so far, read through the API once the store has flushed them and they are visible. */
async function readLog (s: Setup, query: Record<string, string> = {}, organizationId = s.fixture.organizationId): Promise<{ status: number, body: { events: PhoneNumberEvent[], nextCursor: string | null } & Record<string, unknown> }> {
  await s.app.orgPhoneNumbers.eventsFlushed()
  await new Promise((resolve) => setTimeout(resolve, VISIBILITY_MS + 50))
  const search = new URLSearchParams(query).toString()
  const response = await s.app.inject({ method: 'GET', url: `${phoneNumbersUrl(organizationId)}/events${search === '' ? '' : `?${search}`}`, headers: s.headers })
  return { status: response.statusCode, body: response.json() }
}

async function allEvents (s: Setup): Promise<PhoneNumberEvent[]> {
  const { status, body } = await readLog(s, { limit: '1000' })
  if (status !== 200) throw new Error(`events answered ${status}: ${JSON.stringify(body)}`)
  return body.events
}

t.test('each kind of change records its events, with before and after as stored', async (t) => {
  const s = await setUp(t)
  const { organizationId, userId, otherUserId, adminId } = { ...s.fixture, adminId: s.adminId }
  const url = phoneNumbersUrl(organizationId)
  const actor = { sub: adminId, role: 'SUPERADMIN' }

  const first = await send(s, 'POST', url, { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550101', label: 'Desk' }, 'req-assign-1')
  t.equal(first.status, 200)
  let events = await allEvents(s)
  t.equal(events.length, 1, 'a new assignment: one event')
  t.match(events[0], {
    type: 'assigned',
    organizationId,
    userId,
    provider: 'twilio',
    phoneNumber: '+14165550101',
    before: null,
    actor,
    requestId: 'req-assign-1'
  })
  t.strictSame(events[0]!.after, first.body['assignment'], 'after is the entry the API answered')
  t.notOk('fromUserId' in events[0]!, 'only transfers name a source user')
  t.match(events[0]!.id, /^[0-9a-f]{24}$/)

  const repeat = await send(s, 'POST', url, { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550101', label: 'Desk' }, 'req-repeat')
  t.equal(repeat.status, 200)
  t.equal((await allEvents(s)).length, 1, 'an idempotent repeat records nothing')

  const relabel = await send(s, 'POST', url, { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550101', label: 'Front desk' }, 'req-relabel')
  events = await allEvents(s)
  t.equal(events.length, 2)
  t.match(events[1], { type: 'updated', requestId: 'req-relabel', userId })
  t.strictSame(events[1]!.before, events[0]!.after, 'before is the entry as it was')
  t.strictSame(events[1]!.after, relabel.body['assignment'], 'after is the entry as it is')

  // A second default of the same provider clears the first: two changed entries, two events.
  const second = await send(s, 'POST', url, { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550102' }, 'req-second')
  events = await allEvents(s)
  t.equal(events.length, 4, 'the new entry and the cleared default')
  const added = events.slice(2).find((event) => event.type === 'assigned')
  const cleared = events.slice(2).find((event) => event.type === 'updated')
  t.strictSame(added?.after, second.body['assignment'])
  t.equal(cleared?.phoneNumber, '+14165550101')
  t.equal(cleared?.before?.isDefault, true)
  t.equal(cleared?.after?.isDefault, false)
  t.equal(cleared?.requestId, 'req-second', 'the cleared default is recorded under the request that cleared it')
  const stored = await s.db.collection('users').findOne({ _id: new ObjectId(userId) })
  const storedFirst = (stored?.['phoneNumbers'] as Array<Record<string, unknown>>).find((entry) => entry['phoneNumber'] === '+14165550101')
  t.equal(cleared?.after?.updatedAt, (storedFirst?.['updatedAt'] as Date).toISOString(), 'after matches the stored document')

  // Refusals record nothing: another organization's user, a missing assignment, a bad body.
  t.equal((await send(s, 'POST', url, { targetUserId: s.fixture.foreignUserId, provider: 'twilio', phoneNumber: '+14165550103' }, 'req-refused')).status, 404)
  t.equal((await send(s, 'DELETE', url, { targetUserId: userId, provider: 'sinch', phoneNumber: '+14165550101' }, 'req-missing')).status, 404)
  t.equal((await send(s, 'POST', url, { targetUserId: userId, provider: 'nexmo', phoneNumber: '+14165550101' }, 'req-invalid')).status, 400)
  t.equal((await allEvents(s)).length, 4, 'refused requests record nothing')

  const transfer = await send(s, 'POST', `${url}/transfer`, { fromUserId: userId, toUserId: otherUserId, provider: 'twilio', phoneNumber: '+14165550102' }, 'req-transfer')
  t.equal(transfer.status, 200)
  events = await allEvents(s)
  t.equal(events.length, 5, 'a transfer is one event')
  const moved = events[4]!
  t.match(moved, { type: 'transferred', userId: otherUserId, fromUserId: userId, phoneNumber: '+14165550102', requestId: 'req-transfer', actor })
  t.strictSame(moved.before, second.body['assignment'], 'before is the source entry')
  t.strictSame(moved.after, transfer.body['assignment'], 'after is the target entry')

  const removal = await send(s, 'DELETE', url, { targetUserId: userId, provider: 'twilio', phoneNumber: '+14165550101' }, 'req-remove')
  t.equal(removal.status, 200)
  events = await allEvents(s)
  t.equal(events.length, 6)
  t.match(events[5], { type: 'removed', userId, after: null, requestId: 'req-remove' })
  t.strictSame(events[5]!.before, cleared?.after, 'before is the entry as it was removed')

  const outboxes = await s.db.collection('users').find({ 'phoneNumbersOutbox.0': { $exists: true } }).toArray()
  t.equal(outboxes.length, 0, 'every outbox is empty once flushed')
  t.equal(await s.db.collection('phoneNumberEvents').countDocuments(), 6, 'the log holds exactly one document per event')
})

t.test('paging, filters and following the log', async (t) => {
  const s = await setUp(t)
  const { organizationId, userId, otherUserId } = s.fixture
  const url = phoneNumbersUrl(organizationId)
  for (let i = 0; i < 9; i++) {
    const status = (await send(s, 'POST', url, { targetUserId: i % 2 === 0 ? userId : otherUserId, provider: 'sinch', phoneNumber: `+1416555020${i}`, isDefault: false }, `req-${i}`)).status
    t.equal(status, 200)
  }
  await send(s, 'DELETE', url, { targetUserId: userId, provider: 'sinch', phoneNumber: '+14165550200' }, 'req-del')
  const all = await allEvents(s)
  t.equal(all.length, 10)

  for (const limit of [1, 3, 7]) {
    const seen: string[] = []
    let after: string | undefined
    for (let page = 0; page < 20; page++) {
      const { status, body } = await readLog(s, { limit: String(limit), ...(after === undefined ? {} : { after }) })
      t.equal(status, 200)
      t.ok(body.events.length <= limit)
      seen.push(...body.events.map((event) => event.id))
      if (body.nextCursor === null) break
      after = body.nextCursor
    }
    t.strictSame(seen, all.map((event) => event.id), `limit ${limit}: every event once, in the log's order`)
  }

  const byUser = await readLog(s, { targetUserId: otherUserId })
  t.strictSame(byUser.body.events.map((event) => event.id), all.filter((event) => event.userId === otherUserId).map((event) => event.id), 'targetUserId')
  const byNumber = await readLog(s, { phoneNumber: '+14165550200' })
  t.strictSame(byNumber.body.events.map((event) => event.type), ['assigned', 'removed'], 'phoneNumber')
  const byType = await readLog(s, { type: 'removed', targetUserId: userId })
  t.equal(byType.body.events.length, 1, 'type and user combined')

  // Following: from the last event, nothing; then exactly what happened since.
  const last = all[all.length - 1]!.id
  const quiet = await readLog(s, { after: last })
  t.strictSame(quiet.body, { events: [], nextCursor: null })
  await send(s, 'POST', url, { targetUserId: userId, provider: 'textgrid', phoneNumber: '+14165550299', isDefault: false }, 'req-later')
  const since = await readLog(s, { after: last })
  t.strictSame(since.body.events.map((event) => event.requestId), ['req-later'])

  for (const query of [{ limit: '0' }, { limit: '1001' }, { after: 'not-an-id' }, { after: new ObjectId().toHexString() }, { type: 'moved' }]) {
    const { status, body } = await readLog(s, query)
    t.equal(status, 400, `400 for ${JSON.stringify(query)}`)
    t.type(body['error'], 'string')
    t.type(body['details'], 'string')
  }
  // Another organization's event id is not a cursor here.
  await send(s, 'POST', phoneNumbersUrl(s.fixture.otherOrganizationId), { targetUserId: s.fixture.foreignUserId, provider: 'twilio', phoneNumber: '+14165550298' }, 'req-other')
  const foreign = await readLog(s, {}, s.fixture.otherOrganizationId)
  t.equal(foreign.body.events.length, 1)
  t.equal((await readLog(s, { after: foreign.body.events[0]!.id })).status, 400, 'a cursor never reaches another organization')
  t.equal((await readLog(s, {}, new ObjectId().toHexString())).status, 404, 'unknown organization')
})
