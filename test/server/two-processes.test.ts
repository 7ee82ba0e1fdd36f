/**
 * Two standalone server processes on one database, as behind a load
 * balancer: each sequential workflow works on its first request whichever
 * process gets each step (no lease to wait out), and the host's own writes
 * to the users collection (numbers added, users moved between
 * organizations, users deleted) show in either process's listing on the
 * very next request. Checked over HTTP and against the stored documents.
 *
 * mongo-java-server only for the cross-process part: FerretDB 1.24 does not
 * apply an update's filter atomically across connections, so several server
 * processes on one FerretDB are unsupported (README, compatibility).
 */
import { ObjectId } from 'mongodb'
import t from 'tap'
import { checkIntegrity } from '../../tools/integrity/index.js'
import { startStandalone } from './helper-server.js'
import { TEST_BACKEND } from '../helper.js'
import { entry, RULE_1, RULE_2, SECRET, startHarness, stopServer, type Answer, type Harness } from './ownership-helper.js'

t.setTimeout(240_000)

if (TEST_BACKEND === 'ferretdb') {
  t.comment('skipped on FerretDB 1.24: several server processes on one FerretDB are unsupported (its updates are not atomic across connections)')
} else {
  const a = await startHarness(t)
  const second = await startStandalone({ MONGODB_URI: a.uri, JWT_SECRET: SECRET, LOG_LEVEL: 'warn', REQUEST_LOGGING: 'false' })
  t.teardown(async () => await stopServer(second))

  /** The same calls as `a`, sent to the second process. */
  async function onB (method: string, path: string, body?: unknown): Promise<Answer> {
    const response = await fetch(`${second.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${a.admin}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    return { status: response.status, body: await response.json() as Record<string, unknown> }
  }
  const b = {
    assign: async (organizationId: string, body: Record<string, unknown>) => await onB('POST', `/api/organizations/${organizationId}/phone-numbers`, body),
    remove: async (organizationId: string, body: Record<string, unknown>) => await onB('DELETE', `/api/organizations/${organizationId}/phone-numbers`, body),
    transfer: async (organizationId: string, body: Record<string, unknown>) => await onB('POST', `/api/organizations/${organizationId}/phone-numbers/transfer`, body),
    list: async (organizationId: string, query = '') => await onB('GET', `/api/organizations/${organizationId}/phone-numbers${query}`),
    lookup: async (phoneNumber: string) => await onB('GET', `/api/phone-numbers/${encodeURIComponent(phoneNumber)}/inbound-route`)
  }

  async function holders (h: Harness, phoneNumber: string): Promise<string[]> {
    return (await h.entriesOf(phoneNumber)).map(({ userId, entry }) => `${userId}:${entry['isInboundEnabled'] === true ? 'inbound' : 'outbound'}`).sort()
  }

  function listed (answer: Answer): string[] {
    return ((answer.body['phoneNumbers'] ?? []) as Array<Record<string, unknown>>).map((item) => `${String(item['userId'])}:${String(item['phoneNumber'])}`).sort()
  }

  t.test('remove on A, then assign in another organization on B: 200 on the first request', async (t) => {
    const f = await a.fixture()
    const n = a.number()
    t.equal((await a.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200, 'A: a1 (org A) holds it')
    t.equal((await a.remove(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200, 'A: removed')
    const elsewhere = await b.assign(f.orgB, { targetUserId: f.b1, provider: 'twilio', phoneNumber: n })
    t.equal(elsewhere.status, 200, 'B: org B gets it at once', { body: elsewhere.body })
    t.same(await holders(a, n), [`${f.b1}:inbound`])
  })

  t.test('assign on A, then transfer on B; transfer back on A, and on again on B: each 200 first time', async (t) => {
    const f = await a.fixture()
    const n = a.number()
    t.equal((await a.assign(f.orgA, { targetUserId: f.a1, provider: 'sinch', phoneNumber: n })).status, 200, 'A: a1 holds it inbound')
    const moved = await b.transfer(f.orgA, { provider: 'sinch', phoneNumber: n, fromUserId: f.a1, toUserId: f.a2 })
    t.equal(moved.status, 200, 'B: transferred to a2', { body: moved.body })
    const back = await a.transfer(f.orgA, { provider: 'sinch', phoneNumber: n, fromUserId: f.a2, toUserId: f.a1 })
    t.equal(back.status, 200, 'A: transferred back to a1', { body: back.body })
    const again = await b.transfer(f.orgA, { provider: 'sinch', phoneNumber: n, fromUserId: f.a1, toUserId: f.a3 })
    t.equal(again.status, 200, 'B: on to a3', { body: again.body })
    t.same(await holders(a, n), [`${f.a3}:inbound`], 'a3 alone holds it, with the route')
    t.equal((await a.lookup(encodeURIComponent(n))).body['userId'], f.a3, 'A routes to a3')
    t.equal((await b.lookup(n)).body['userId'], f.a3, 'B routes to a3')
  })

  t.test('inbound off for one user on A, then on for another user on B: 200 first time, one route', async (t) => {
    const f = await a.fixture()
    const n = a.number()
    t.equal((await a.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200)
    t.equal((await a.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n, isInboundEnabled: false })).status, 200, 'A: a1 switches its route off')
    const taken = await b.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n })
    t.equal(taken.status, 200, 'B: a2 takes the route at once', { body: taken.body })
    t.same(await holders(a, n), [`${f.a1}:outbound`, `${f.a2}:inbound`].sort())
    t.equal((await b.lookup(n)).body['userId'], f.a2)
  })

  t.test('the rules still hold across the two: the second inbound route and another organization are refused', async (t) => {
    const f = await a.fixture()
    const n = a.number()
    t.equal((await a.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n })).status, 200)
    const route = await b.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n })
    t.match(route, { status: 409, body: { error: RULE_2 } }, 'B: a second inbound route is refused')
    const other = await b.assign(f.orgB, { targetUserId: f.b1, provider: 'twilio', phoneNumber: n })
    t.match(other, { status: 409, body: { error: RULE_1 } }, 'B: another organization is refused')
    t.same(await holders(a, n), [`${f.a1}:inbound`], 'nothing else was written')
  })

  t.test('the host writes numbers straight into users: both processes list them on the next request', async (t) => {
    const f = await a.fixture()
    const users = a.db.collection('users')
    const numbers = Array.from({ length: 30 }, () => a.number())
    await users.updateOne({ _id: new ObjectId(f.a1) }, { $set: { phoneNumbers: numbers.slice(0, 15).map((n) => entry('twilio', n, { isInboundEnabled: false })) } })
    await users.updateOne({ _id: new ObjectId(f.a2) }, { $set: { phoneNumbers: numbers.slice(15).map((n) => entry('sinch', n, { isInboundEnabled: false })) } })
    const expected = [...numbers.slice(0, 15).map((n) => `${f.a1}:${n}`), ...numbers.slice(15).map((n) => `${f.a2}:${n}`)].sort()
    t.same(listed(await a.list(f.orgA)), expected, 'A lists all 30 at once')
    t.same(listed(await b.list(f.orgA)), expected, 'B lists all 30 at once')
    // Paged: the same 30, one page of 7 at a time, on alternating processes.
    const paged: string[] = []
    let cursor: string | undefined
    for (let page = 0; page < 10; page++) {
      const query = `?limit=7${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`
      const answer = page % 2 === 0 ? await a.list(f.orgA, query) : await b.list(f.orgA, query)
      t.equal(answer.status, 200, `page ${page + 1} on ${page % 2 === 0 ? 'A' : 'B'}`, { body: answer.body })
      paged.push(...listed(answer))
      cursor = answer.body['nextCursor'] as string | null ?? undefined
      if (cursor === undefined) break
    }
    t.same(paged.sort(), expected, 'paging across the two processes lists each exactly once')
    t.same(listed(await b.list(f.orgA, '?provider=sinch')), numbers.slice(15).map((n) => `${f.a2}:${n}`).sort(), 'filters apply to them')

    // The host moves a2 to organization B: listed there at once, no longer in A.
    await users.updateOne({ _id: new ObjectId(f.a2) }, { $set: { organizationId: new ObjectId(f.orgB) } })
    t.same(listed(await b.list(f.orgB)).filter((item) => item.startsWith(f.a2)), numbers.slice(15).map((n) => `${f.a2}:${n}`).sort(), 'the moved user is listed under its new organization on the next request')
    t.notOk(listed(await a.list(f.orgA)).some((item) => item.startsWith(f.a2)), 'and no longer under the old one')
    // The host deletes a1: gone from the listing at once.
    await users.deleteOne({ _id: new ObjectId(f.a1) })
    t.same(listed(await a.list(f.orgA)), [], 'a deleted user is not listed')
    // A number the host gave org B's user is refused to org A by either process.
    const taken = await a.assign(f.orgA, { targetUserId: f.a3, provider: 'sinch', phoneNumber: numbers[20] })
    t.match(taken, { status: 409, body: { error: RULE_1 } }, 'the host\'s write counts for the rules at once')
  })

  t.test('a number the host put into two organizations: its holders update and remove their own entries; new conflicting ones are refused', async (t) => {
    const f = await a.fixture()
    const n = a.number()
    const users = a.db.collection('users')
    await users.updateOne({ _id: new ObjectId(f.a1) }, { $set: { phoneNumbers: [entry('twilio', n, { isInboundEnabled: false })] } })
    await users.updateOne({ _id: new ObjectId(f.b1) }, { $set: { phoneNumbers: [entry('twilio', n, { isInboundEnabled: false })] } })
    const report = await checkIntegrity(a.db)
    t.ok(report.numbersInTwoOrganizations.some((violation) => violation.phoneNumber === n), 'check-integrity reports the number in two organizations')

    const update = await a.assign(f.orgA, { targetUserId: f.a1, provider: 'twilio', phoneNumber: n, isInboundEnabled: false, label: 'kept' })
    t.equal(update.status, 200, 'A: a1 updates its own entry', { body: update.body })
    const updateB = await b.assign(f.orgB, { targetUserId: f.b1, provider: 'twilio', phoneNumber: n, isInboundEnabled: false, label: 'theirs' })
    t.equal(updateB.status, 200, 'B: b1 updates its own entry', { body: updateB.body })
    const fresh = await b.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n, isInboundEnabled: false })
    t.match(fresh, { status: 409, body: { error: RULE_1 } }, 'a new holder in org A is refused (org B holds it)')
    const removed = await b.remove(f.orgB, { targetUserId: f.b1, provider: 'twilio', phoneNumber: n })
    t.equal(removed.status, 200, 'B: b1 removes its own entry', { body: removed.body })
    t.same(await holders(a, n), [`${f.a1}:outbound`], 'a1 alone holds it now')
    const nowFree = await a.assign(f.orgA, { targetUserId: f.a2, provider: 'twilio', phoneNumber: n })
    t.equal(nowFree.status, 200, 'with one organization left, a new holder there is allowed')
  })
}
