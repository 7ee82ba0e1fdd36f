/**
 * The Idempotency-Key header through the real plugin on a real database:
 * replays (status, body, header; nothing written, no second event), another
 * body (422), a request still running (409), malformed keys (400 before any
 * database command), the key's scope (caller, organization, method and path),
 * 5xx answers forgotten, expiry, a dead request's lease taken over, and two
 * plugin instances (two processes) racing on one key.
 */
import t from 'tap'
import Fastify from 'fastify'
import { MongoClient, type CommandStartedEvent } from 'mongodb'
import orgPhoneNumbers, { DEFAULT_OPTIONS, type OrgPhoneNumbersOptions, type PhoneNumberEvent, type StoreStep } from '../../plugins/phone-numbers/index.js'
import { build, phoneNumbersUrl, settledSnapshot, TEST_SECRET, type Built } from '../helper.js'
import { uriForDatabase } from '../helper-database.js'

t.setTimeout(120_000)

const NUMBER = '+14165550142'
const REPLAYED = 'idempotent-replayed'
const VISIBILITY_MS = 200

/** The store's crash-test hook, handed over through the plugin's options (as test/server/metrics.test.ts does). */
function withStoreStep (onStep: (step: StoreStep) => Promise<void>, options: Partial<OrgPhoneNumbersOptions> = {}): Partial<OrgPhoneNumbersOptions> {
  return { ...options, onStep } as Partial<OrgPhoneNumbersOptions>
}

function keyed (built: Built, key: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ...built.headers, 'idempotency-key': key, ...extra }
}

async function keptRecords (built: Built): Promise<Array<Record<string, unknown>>> {
  return await built.db.collection(DEFAULT_OPTIONS.idempotencyCollection).find({}).toArray()
}

async function eventsOf (built: Built, phoneNumber: string): Promise<PhoneNumberEvent[]> {
  await built.app.orgPhoneNumbers.eventsFlushed()
  await new Promise((resolve) => setTimeout(resolve, VISIBILITY_MS + 50))
  const response = await built.app.inject({ method: 'GET', url: `${phoneNumbersUrl(built.fixture.organizationId)}/events?phoneNumber=${encodeURIComponent(phoneNumber)}&limit=1000`, headers: built.headers })
  if (response.statusCode !== 200) throw new Error(`events answered ${response.statusCode}: ${response.body}`)
  return response.json().events
}

t.test('a repeated assign gets the first answer again, marked as a replay, and writes nothing', async (t) => {
  const built = await build(t)
  const { app, fixture } = built
  const request = { method: 'POST' as const, url: phoneNumbersUrl(fixture.organizationId), headers: keyed(built, 'assign-1'), payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER, label: 'Desk' } }

  const first = await app.inject(request)
  t.equal(first.statusCode, 200)
  t.equal(first.headers[REPLAYED], undefined, 'the first answer is no replay')
  const stored = await settledSnapshot(built.db)

  // The same body with its keys in another order is the same request.
  const second = await app.inject({ ...request, payload: { label: 'Desk', phoneNumber: NUMBER, provider: 'twilio', targetUserId: fixture.userId } })
  t.equal(second.statusCode, 200)
  t.equal(second.headers[REPLAYED], 'true')
  t.equal(second.body, first.body, 'byte for byte the first body, createdAt included')
  t.equal(second.headers['content-type'], first.headers['content-type'])
  t.same(await settledSnapshot(built.db), stored, 'users (revisions included) and organizations unchanged')

  const records = await keptRecords(built)
  t.equal(records.length, 1, 'one record for the key')
  t.match(records[0], { answer: { status: 200, body: first.body } })
  t.ok((records[0]?.['expiresAt'] as Date).getTime() - Date.now() > 23 * 3600_000, 'kept for 24 h by default')
})

t.test('a replayed transfer answers as the first did and records one event', async (t) => {
  const built = await build(t, { eventVisibilityDelayMs: VISIBILITY_MS })
  const { app, fixture, headers } = built
  const url = phoneNumbersUrl(fixture.organizationId)
  t.equal((await app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider: 'sinch', phoneNumber: NUMBER } })).statusCode, 200)

  const transfer = { method: 'POST' as const, url: `${url}/transfer`, headers: keyed(built, 'move-1'), payload: { provider: 'sinch', phoneNumber: NUMBER, fromUserId: fixture.userId, toUserId: fixture.otherUserId } }
  const first = await app.inject(transfer)
  t.equal(first.statusCode, 200)
  const holders = { from: await built.phoneNumbersOf(fixture.userId), to: await built.phoneNumbersOf(fixture.otherUserId) }
  t.equal(holders.to.length, 1)

  // Run again, the transfer would answer 404 (the source holds the number no more).
  const second = await app.inject(transfer)
  t.equal(second.statusCode, 200)
  t.equal(second.headers[REPLAYED], 'true')
  t.same(second.json(), first.json())
  t.same({ from: await built.phoneNumbersOf(fixture.userId), to: await built.phoneNumbersOf(fixture.otherUserId) }, holders, 'both users unchanged')

  const events = await eventsOf(built, NUMBER)
  t.same(events.map((event) => event.type), ['assigned', 'transferred'], 'exactly one transfer event')
  t.same(events[1]?.after, first.json().assignment, 'the event is the first transfer\'s')
})

t.test('a 4xx answer is kept like a 2xx', async (t) => {
  const built = await build(t)
  const { app, fixture, headers } = built
  const url = phoneNumbersUrl(fixture.organizationId)
  const remove = { method: 'DELETE' as const, url, headers: keyed(built, 'remove-1'), payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } }
  const first = await app.inject(remove)
  t.equal(first.statusCode, 404)
  t.equal((await app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } })).statusCode, 200)

  const second = await app.inject(remove)
  t.equal(second.statusCode, 404, 'the kept 404, although the number is held now')
  t.equal(second.headers[REPLAYED], 'true')
  t.same(second.json(), first.json())
  t.equal((await built.phoneNumbersOf(fixture.userId)).length, 1, 'and the number was not removed')
})

t.test('the same key with another body answers 422 and changes nothing', async (t) => {
  const built = await build(t)
  const { app, fixture } = built
  const url = phoneNumbersUrl(fixture.organizationId)
  const headers = keyed(built, 'assign-2')
  t.equal((await app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER, label: 'A' } })).statusCode, 200)
  const stored = await settledSnapshot(built.db)

  const other = await app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER, label: 'B' } })
  t.equal(other.statusCode, 422)
  t.same(other.json(), { error: 'Idempotency key reused', details: 'This Idempotency-Key was used with another request body; send a new key for a new request' })
  t.equal(other.headers[REPLAYED], undefined)
  t.same(await settledSnapshot(built.db), stored, 'label still A')
  t.match((await built.phoneNumbersOf(fixture.userId))[0], { label: 'A' })
})

t.test('a repeat while the first request runs answers 409 with Retry-After, then the first answer', async (t) => {
  let release: () => void = () => {}
  let held: () => void = () => {}
  const holding = new Promise<void>((resolve) => { held = resolve })
  const released = new Promise<void>((resolve) => { release = resolve })
  const built = await build(t, withStoreStep(async (step) => {
    if (step !== 'assign:claimed') return
    held()
    await released
  }))
  const { app, fixture } = built
  const request = { method: 'POST' as const, url: phoneNumbersUrl(fixture.organizationId), headers: keyed(built, 'slow-1'), payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } }

  const first = app.inject(request)
  await holding
  const during = await app.inject(request)
  t.equal(during.statusCode, 409)
  t.equal(during.headers['retry-after'], '1')
  t.same(during.json(), { error: 'Idempotency key in use', details: 'A request with this Idempotency-Key is still running; retry after 1 s to get its answer' })
  t.equal((await built.phoneNumbersOf(fixture.userId)).length, 0, 'nothing written yet')

  release()
  const done = await first
  t.equal(done.statusCode, 200)
  const after = await app.inject(request)
  t.equal(after.statusCode, 200)
  t.equal(after.headers[REPLAYED], 'true')
  t.equal(after.body, done.body)
})

t.test('a malformed key answers 400 before any database command', async (t) => {
  const built = await build(t)
  const { fixture } = built
  // A plugin instance of its own on the same database, over a client that reports every command.
  const client = new MongoClient(uriForDatabase(built.db.databaseName), { monitorCommands: true })
  await client.connect()
  t.teardown(() => client.close())
  const app = Fastify({ logger: false })
  await app.register(orgPhoneNumbers, { db: client.db(built.db.databaseName), auth: { secret: TEST_SECRET } })
  await app.ready()
  t.teardown(() => app.close())
  const commands: string[] = []
  const record = (event: CommandStartedEvent): void => { commands.push(`${event.commandName} ${JSON.stringify(event.command[event.commandName])}`) }

  const stored = await settledSnapshot(built.db)
  client.on('commandStarted', record)
  for (const key of ['', 'has space', 'ünïcode', 'semi;colon', 'a'.repeat(256), 'k1, k2']) {
    const response = await app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.organizationId), headers: keyed(built, key), payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } })
    t.equal(response.statusCode, 400, JSON.stringify(key))
    t.equal(response.json().error, 'Validation error')
    t.match(response.json().details, /^headers\/idempotency-key must /)
  }
  client.off('commandStarted', record)
  const written = commands.filter((command) => /^(insert|update|delete|findAndModify)\b/.test(command) || command.includes(DEFAULT_OPTIONS.idempotencyCollection))
  t.same(written, [], 'no write and no idempotency record read')
  t.same(await keptRecords(built), [])
  t.same(await settledSnapshot(built.db), stored)

  const longest = await app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.organizationId), headers: keyed(built, `${'A-z0_9:.'.repeat(31)}abcdefg`), payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } })
  t.equal(longest.statusCode, 200, 'a 255-character key of every allowed kind is accepted')
})

t.test('the key belongs to its caller, organization, method and path', async (t) => {
  const built = await build(t)
  const { app, fixture, sign } = built
  const url = phoneNumbersUrl(fixture.organizationId)
  const key = 'shared-key'
  const body = { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER }
  t.equal((await app.inject({ method: 'POST', url, headers: keyed(built, key), payload: body })).statusCode, 200)

  // Same key, same body, DELETE: another method, so it runs (and removes).
  const removed = await app.inject({ method: 'DELETE', url, headers: keyed(built, key), payload: body })
  t.equal(removed.statusCode, 200)
  t.equal(removed.headers[REPLAYED], undefined)
  t.equal((await built.phoneNumbersOf(fixture.userId)).length, 0)

  // Another caller's repeat of that DELETE runs too: 404, not the first caller's 200.
  const otherCaller = `Bearer ${sign({ sub: fixture.otherUserId, role: 'SUPERADMIN' })}`
  const byOther = await app.inject({ method: 'DELETE', url, headers: keyed(built, key, { authorization: otherCaller }), payload: body })
  t.equal(byOther.statusCode, 404)
  t.equal(byOther.headers[REPLAYED], undefined)

  // Another organization: runs there (the user is not in it).
  const elsewhere = await app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.otherOrganizationId), headers: keyed(built, key), payload: body })
  t.equal(elsewhere.statusCode, 404)
  t.equal(elsewhere.headers[REPLAYED], undefined)

  // Another path: a transfer with that key and another body is no 422.
  const transfer = await app.inject({ method: 'POST', url: `${url}/transfer`, headers: keyed(built, key), payload: { provider: 'twilio', phoneNumber: NUMBER, fromUserId: fixture.userId, toUserId: fixture.otherUserId } })
  t.equal(transfer.statusCode, 404)

  // The organization's id in upper case is the same organization: a replay.
  const upper = await app.inject({ method: 'POST', url: phoneNumbersUrl(fixture.organizationId.toUpperCase()), headers: keyed(built, key), payload: body })
  t.equal(upper.statusCode, 200)
  t.equal(upper.headers[REPLAYED], 'true')
  t.equal((await built.phoneNumbersOf(fixture.userId)).length, 0, 'the replay assigned nothing')
  t.equal((await keptRecords(built)).length, 5, 'one record per scope')
})

t.test('a 5xx answer is not kept: a retry runs again', async (t) => {
  let failures = 1
  const built = await build(t, withStoreStep(async (step) => {
    if (step === 'assign:claimed' && failures-- > 0) throw new Error('simulated database failure')
  }))
  const { app, fixture } = built
  const request = { method: 'POST' as const, url: phoneNumbersUrl(fixture.organizationId), headers: keyed(built, 'flaky-1'), payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } }
  const failed = await app.inject(request)
  t.equal(failed.statusCode, 500)
  t.same(await keptRecords(built), [], 'the in-flight record was deleted')

  const retried = await app.inject(request)
  t.equal(retried.statusCode, 200)
  t.equal(retried.headers[REPLAYED], undefined, 'the retry ran')
  t.equal((await built.phoneNumbersOf(fixture.userId)).length, 1)
  const again = await app.inject(request)
  t.equal(again.headers[REPLAYED], 'true')
  t.equal(again.body, retried.body)
})

t.test('an expired record is not replayed, and sweeps delete it', async (t) => {
  const built = await build(t, { idempotencyTtlMs: 300 })
  const { app, fixture, headers } = built
  const url = phoneNumbersUrl(fixture.organizationId)
  const request = { method: 'POST' as const, url, headers: keyed(built, 'short-1'), payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } }
  t.equal((await app.inject(request)).statusCode, 200)
  t.equal((await app.inject(request)).headers[REPLAYED], 'true', 'replayed within the TTL')
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal((await app.inject({ method: 'DELETE', url, headers, payload: request.payload })).statusCode, 200)

  const late = await app.inject(request)
  t.equal(late.statusCode, 200)
  t.equal(late.headers[REPLAYED], undefined, 'past the TTL the request runs again')
  t.equal((await built.phoneNumbersOf(fixture.userId)).length, 1, 'and assigned the number again')

  const expiryIndex = (await built.db.collection(DEFAULT_OPTIONS.idempotencyCollection).indexes()).find((index) => index.name === 'expiresAt_1')
  t.same(expiryIndex?.key, { expiresAt: 1 }, 'the expiry index exists')
  t.comment(`expiry index on this backend: ${expiryIndex?.expireAfterSeconds === undefined ? 'plain (no TTL index accepted)' : `TTL, expireAfterSeconds ${expiryIndex.expireAfterSeconds}`}`)

  // Sweeps run every max(TTL, 1 s): the record, expired again, goes.
  const deadline = Date.now() + 5000
  while ((await keptRecords(built)).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(await keptRecords(built), [], 'the sweep deleted the expired record')
})

t.test('a request whose lease ran out (its process died) is taken over', async (t) => {
  let release: () => void = () => {}
  let held: () => void = () => {}
  const holding = new Promise<void>((resolve) => { held = resolve })
  const released = new Promise<void>((resolve) => { release = resolve })
  let calls = 0
  const built = await build(t, withStoreStep(async (step) => {
    if (step !== 'assign:claimed' || calls++ > 0) return
    held()
    await released
  }, { idempotencyLeaseMs: 200 }))
  const { app, fixture } = built
  const request = { method: 'POST' as const, url: phoneNumbersUrl(fixture.organizationId), headers: keyed(built, 'stuck-1'), payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } }
  const stuck = app.inject(request)
  await holding
  await new Promise((resolve) => setTimeout(resolve, 300))
  // Past the lease the repeat takes the key and runs (it queues behind the stuck one inside the store).
  const takeover = app.inject(request)
  await new Promise((resolve) => setTimeout(resolve, 100))
  release()
  const [first, second] = await Promise.all([stuck, takeover])
  t.equal(first.statusCode, 200)
  t.equal(second.statusCode, 200)
  t.equal(second.headers[REPLAYED], undefined, 'the takeover ran')
  const kept = await keptRecords(built)
  t.equal(kept.length, 1)
  t.match(kept[0], { answer: { status: 200, body: second.body } }, 'the answer kept is the takeover\'s: the stuck request lost the key')
})

t.test('two plugin instances on one database (two processes) run a keyed transfer once', async (t) => {
  const built = await build(t, { eventVisibilityDelayMs: VISIBILITY_MS })
  const { app, fixture, headers } = built
  const url = phoneNumbersUrl(fixture.organizationId)
  const other = Fastify({ logger: false })
  await other.register(orgPhoneNumbers, { db: built.db, auth: { secret: TEST_SECRET } })
  await other.ready()
  t.teardown(() => other.close())
  t.equal((await app.inject({ method: 'POST', url, headers, payload: { targetUserId: fixture.userId, provider: 'twilio', phoneNumber: NUMBER } })).statusCode, 200)

  const transfer = { method: 'POST' as const, url: `${url}/transfer`, headers: keyed(built, 'race-1'), payload: { provider: 'twilio', phoneNumber: NUMBER, fromUserId: fixture.userId, toUserId: fixture.otherUserId } }
  const answers = await Promise.all([app.inject(transfer), other.inject(transfer)])
  const ran = answers.filter((answer) => answer.headers[REPLAYED] === undefined && answer.statusCode !== 409)
  t.equal(ran.length, 1, `one instance ran it (${answers.map((answer) => `${answer.statusCode} ${answer.headers[REPLAYED] ?? ''}`).join(', ')})`)
  t.equal(ran[0]?.statusCode, 200)
  for (const answer of answers.filter((answer) => answer !== ran[0])) {
    t.ok(answer.statusCode === 409 || (answer.statusCode === 200 && answer.headers[REPLAYED] === 'true' && answer.body === ran[0]?.body), 'the other waited (409) or got the replay')
  }
  const replay = await other.inject(transfer)
  t.equal(replay.headers[REPLAYED], 'true')
  t.equal(replay.body, ran[0]?.body)
  t.equal((await built.phoneNumbersOf(fixture.otherUserId)).length, 1)
  t.same((await eventsOf(built, NUMBER)).map((event) => event.type), ['assigned', 'transferred'])
})
