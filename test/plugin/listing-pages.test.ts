/**
 * The paged, filtered listing (GET /api/organizations/{id}/phone-numbers with
 * limit, cursor and filters) through the plugin on a real database: walks
 * over every page (with writes during the walk, and a sparse filter), and the
 * index a page query uses.
 * Every answer is checked against the stored user documents
 * (listing-helper.ts computes the expected listing straight from them).
 */
import t, { type Test } from 'tap'
import { ObjectId, type Document } from 'mongodb'
import { listQuery } from '../../src/domain/listing.js'
import { build, phoneNumbersUrl, TEST_BACKEND } from '../helper.js'
import { duplicates, expectedListing, FERRETDB, getPage, keyOf, listUrl, pick, PROVIDERS, random, seedOrganization, walk, type Filters } from './listing-helper.js'

// FerretDB seeds and scans slowly (the sparse-filter walk reads 1,150 users a page), and
// the suite runs files in parallel on 2 cores: tap's 30 s default was seen to run out there.
// FerretDB 1.24 scans the users collection for every page (it serves only a bare _id from an index): slow on a loaded machine.
t.setTimeout(TEST_BACKEND === 'ferretdb' ? 900_000 : 300_000)

t.test('walking every page with limit 1, 7, 1000 and the default gives the stored entries, in order, once each', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 1, 40)
  const expected = await expectedListing(built.db, seeded.organizationId)
  const foreign = await expectedListing(built.db, built.fixture.otherOrganizationId)
  t.ok(expected.length > 100, `the organization holds ${expected.length} listable entries (more than one default page)`)
  t.ok(foreign.length >= 10, 'the other organization holds entries too')
  t.ok(expected.some((entry) => entry.label !== undefined) && expected.some((entry) => entry.label === undefined), 'with and without labels')

  for (const limit of [1, 7, 1000, undefined]) {
    const { entries, pageSizes } = await walk(built, seeded.organizationId, {}, () => limit)
    const size = limit ?? 100
    t.same(entries, expected, `limit ${limit ?? 'default'}: every stored entry, in the documented order, with every field`)
    t.same(duplicates(entries), [], `limit ${limit ?? 'default'}: nothing twice`)
    t.equal(pageSizes.length, Math.max(1, Math.ceil(expected.length / size)), `limit ${limit ?? 'default'}: ${pageSizes.length} pages`)
    t.ok(pageSizes.slice(0, -1).every((n) => n === size), `limit ${limit ?? 'default'}: every page but the last is full (a dense listing never ends a page short)`)
    const foreignIds = new Set(seeded.foreignUserIds)
    t.notOk(entries.some((entry) => foreignIds.has(entry.userId)), `limit ${limit ?? 'default'}: no user of another organization`)
    const malformed = new Set(seeded.malformedUserIds)
    t.notOk(entries.some((entry) => malformed.has(entry.userId)), `limit ${limit ?? 'default'}: nothing from a non-array phoneNumbers field`)
  }

  // The odd entries are really there and really skipped.
  const stored = await built.db.collection('users').find({ organizationId: new ObjectId(seeded.organizationId) }).toArray()
  const rawCount = stored.reduce((sum, user) => sum + (Array.isArray(user['phoneNumbers']) ? user['phoneNumbers'].length : 0), 0)
  t.ok(rawCount > expected.length, `${rawCount - expected.length} stored entries of other shapes were skipped`)

  // The other organization's own listing: exactly its users' entries.
  const other = await walk(built, built.fixture.otherOrganizationId, {}, () => 3)
  t.same(other.entries, foreign, 'the other organization lists its own entries only')
})

t.test('a walk with limit 3 stays complete while numbers are added and removed', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 2, 40)
  const next = random(22)
  const before = await expectedListing(built.db, seeded.organizationId)
  const beforeKeys = new Set(before.map(keyOf))

  // Writes: new numbers to random users, removals of random existing entries.
  const writesPerPage = FERRETDB ? 1 : 2
  const writePages = FERRETDB ? 16 : 30
  const removable = [...before]
  const removed = new Set<string>()
  const added = new Set<string>()
  const failures: string[] = []
  const url = phoneNumbersUrl(seeded.organizationId)
  let addCounter = 0

  async function write (index: number): Promise<void> {
    if (index % 2 === 0) {
      const userId = pick(next, seeded.userIds)
      const provider = pick(next, PROVIDERS)
      const phoneNumber = `+1777${String(5_000_000 + ++addCounter)}`
      added.add(keyOf({ userId, provider, phoneNumber }))
      const response = await built.app.inject({ method: 'POST', url, headers: built.headers, payload: { targetUserId: userId, provider, phoneNumber, isDefault: false, label: 'added mid-walk' } })
      if (response.statusCode !== 200) failures.push(`assign ${provider} ${phoneNumber} to ${userId}: ${response.statusCode} ${response.body}`)
    } else {
      const [victim] = removable.splice(Math.floor(next() * removable.length), 1)
      if (victim === undefined) return
      removed.add(keyOf(victim))
      const response = await built.app.inject({ method: 'DELETE', url, headers: built.headers, payload: { targetUserId: victim.userId, provider: victim.provider, phoneNumber: victim.phoneNumber } })
      if (response.statusCode !== 200) failures.push(`remove ${keyOf(victim)}: ${response.statusCode} ${response.body}`)
    }
  }

  let writeIndex = 0
  let positionsRemoved = 0
  const { entries } = await walk(built, seeded.organizationId, {}, () => 3, async (page) => {
    if (page >= writePages) return
    // The writes run at the same time as the page's read.
    await Promise.all(Array.from({ length: writesPerPage }, () => write(writeIndex++)))
  }, async (page, last) => {
    // Every fifth page: the entry the cursor points after is removed first.
    if (page === 0 || page % 5 !== 0 || page >= writePages || last === undefined || removed.has(keyOf(last))) return
    removed.add(keyOf(last))
    const index = removable.findIndex((entry) => keyOf(entry) === keyOf(last))
    if (index >= 0) removable.splice(index, 1)
    const response = await built.app.inject({ method: 'DELETE', url, headers: built.headers, payload: { targetUserId: last.userId, provider: last.provider, phoneNumber: last.phoneNumber } })
    if (response.statusCode !== 200) failures.push(`remove the cursor's entry ${keyOf(last)}: ${response.statusCode} ${response.body}`)
    positionsRemoved++
  })

  t.same(failures, [], 'every concurrent write succeeded')
  t.ok(added.size > 0 && removed.size > 0 && positionsRemoved > 0, `${added.size} numbers added and ${removed.size} removed during the walk (${positionsRemoved} of them the entry the next cursor points after)`)
  t.same(duplicates(entries), [], 'no entry seen twice')
  const seen = new Map<string, number>()
  for (const entry of entries) seen.set(keyOf(entry), (seen.get(keyOf(entry)) ?? 0) + 1)
  const stable = before.filter((entry) => !removed.has(keyOf(entry)))
  const missing = stable.filter((entry) => seen.get(keyOf(entry)) !== 1).map(keyOf)
  t.same(missing, [], `each of the ${stable.length} entries present for the whole walk seen exactly once`)
  const phantom = entries.filter((entry) => !beforeKeys.has(keyOf(entry)) && !added.has(keyOf(entry))).map(keyOf)
  t.same(phantom, [], 'nothing listed that was neither there before nor added')
  const order = entries.map(keyOf)
  const sortedOrder = [...entries].sort((a, b) => a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.phoneNumber < b.phoneNumber ? -1 : a.phoneNumber > b.phoneNumber ? 1 : a.provider < b.provider ? -1 : a.provider > b.provider ? 1 : 0).map(keyOf)
  t.same(order, sortedOrder, 'the walk still follows the listing order')

  // The writes really happened, and a fresh walk lists the stored result.
  const after = await expectedListing(built.db, seeded.organizationId)
  const afterKeys = new Set(after.map(keyOf))
  t.ok([...removed].every((key) => !afterKeys.has(key)), 'every removed entry is gone from the users')
  t.ok([...added].every((key) => afterKeys.has(key)), 'every added entry is in the users')
  t.same((await walk(built, seeded.organizationId, {}, () => 7)).entries, after, 'a walk after the writes lists the stored entries')
})

t.test('a sparse filter: pages may be empty with a cursor, the walk reaches the one match far down and ends', async (t) => {
  const built = await build(t)
  const org = new ObjectId(built.fixture.organizationId)
  const count = 1150
  const needleIndex = 1120
  const ids = Array.from({ length: count }, () => new ObjectId()).sort((a, b) => a.toHexString() < b.toHexString() ? -1 : 1)
  const at = { createdAt: new Date('2024-05-01T00:00:00Z'), updatedAt: new Date('2024-05-01T00:00:00Z') }
  // Every user meets provider=twilio and label=needle, but through two different
  // entries; only one user holds a twilio entry labelled "needle".
  const users = ids.map((_id, i) => ({
    _id,
    organizationId: org,
    phoneNumbers: i === needleIndex
      ? [{ provider: 'twilio', phoneNumber: `+1416${String(5_000_000 + i)}`, isDefault: true, isInboundEnabled: true, label: 'The Needle', ...at }]
      : [
          { provider: 'twilio', phoneNumber: `+1416${String(5_000_000 + i)}`, isDefault: true, isInboundEnabled: true, label: 'hay', ...at },
          { provider: 'sinch', phoneNumber: `+1905${String(5_000_000 + i)}`, isDefault: true, isInboundEnabled: true, label: 'needle in the hay', ...at }
        ]
  }))
  for (let i = 0; i < users.length; i += 500) await built.db.collection('users').insertMany(users.slice(i, i + 500))
  const filters: Filters = { provider: 'twilio', label: 'needle' }
  const expected = await expectedListing(built.db, built.fixture.organizationId, filters)
  t.same(expected.map((entry) => entry.userId), [ids[needleIndex]!.toHexString()], 'one entry in the stored data matches, far down the organization')
  t.equal(await built.db.collection('users').countDocuments({ organizationId: org, 'phoneNumbers.provider': 'twilio', 'phoneNumbers.label': /needle/i }), count, `all ${count} users meet the dotted prefilters`)

  const firstPage = await getPage(built.app, built.authorization, listUrl(built.fixture.organizationId, filters, 1))
  t.same(firstPage.phoneNumbers, [], 'the first page (1001 users read) is empty')
  t.type(firstPage.nextCursor, 'string', 'and carries a cursor')
  const { entries, pageSizes } = await walk(built, built.fixture.organizationId, filters, () => 1)
  t.same(entries, expected, 'following the cursors reaches the match')
  t.ok(pageSizes.length >= 2, `in ${pageSizes.length} pages (${pageSizes.join(', ')}), the last one with nextCursor null`)
  t.equal(pageSizes[0], 0, 'the walk\'s first page is empty too')

  // A dense filter over the same users is not cut short: pages are full.
  const dense = await walk(built, built.fixture.organizationId, { provider: 'sinch' }, () => 500)
  t.same(dense.entries, await expectedListing(built.db, built.fixture.organizationId, { provider: 'sinch' }), 'provider=sinch with limit 500: every stored sinch entry')
  t.ok(dense.pageSizes.slice(0, -1).every((n) => n === 500), `full pages (${dense.pageSizes.join(', ')})`)
})

/** Every stage of an explain plan, depth first. */
function stagesOf (plan: unknown): Array<Record<string, unknown>> {
  if (typeof plan !== 'object' || plan === null) return []
  const node = plan as Record<string, unknown>
  const children = [node['inputStage'], ...(Array.isArray(node['inputStages']) ? node['inputStages'] : []), node['queryPlan']]
  return [...(typeof node['stage'] === 'string' ? [node] : []), ...children.flatMap(stagesOf)]
}

t.test('explain: a typical page query uses the organizationId_1__id_1 index', async (t: Test) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 8, 40)
  const indexes = await built.db.collection('users').indexes()
  t.ok(indexes.some((index) => index.name === 'organizationId_1__id_1'), 'the plugin created the index')
  const all = await expectedListing(built.db, seeded.organizationId)
  const middle = all[Math.floor(all.length / 2)]!
  const query = listQuery(new ObjectId(seeded.organizationId), 'phoneNumbers', { provider: 'twilio', isInboundEnabled: true }, { userId: new ObjectId(middle.userId), phoneNumber: middle.phoneNumber, provider: middle.provider as 'twilio' })
  const backend = TEST_BACKEND ?? 'this backend'
  let explained: Document | undefined
  let skip: string | false = false
  try {
    explained = await built.db.collection('users').find(query).sort({ _id: 1 }).explain()
  } catch (error) {
    skip = `${backend} does not run explain on find (${(error as Error).message}), so the index choice cannot be checked here`
  }
  const planner = explained?.['queryPlanner'] as Record<string, unknown> | undefined
  const stages = stagesOf(planner?.['winningPlan'])
  if (explained !== undefined && stages.length === 0) {
    skip = `${backend} answers explain without a MongoDB query plan (no winningPlan stages; top-level fields: ${Object.keys(explained).join(', ')}${planner === undefined ? '' : `; queryPlanner fields: ${Object.keys(planner).join(', ')}`}), so the index choice cannot be checked here`
  }
  t.test('the winning plan of a page query', { skip }, async (t) => {
    const scans = stages.filter((stage) => stage['stage'] === 'IXSCAN')
    t.ok(scans.some((stage) => stage['indexName'] === 'organizationId_1__id_1'), `scans organizationId_1__id_1 (stages: ${stages.map((stage) => `${String(stage['stage'])}${stage['indexName'] === undefined ? '' : `(${String(stage['indexName'])})`}`).join(' > ')})`)
    t.notOk(stages.some((stage) => stage['stage'] === 'COLLSCAN'), 'no collection scan')
  })
})
