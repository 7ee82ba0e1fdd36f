/**
 * The paged, filtered listing (GET /api/organizations/{id}/phone-numbers with
 * limit, cursor and filters) through the plugin on a real database: every
 * filter and combination of filters, on the same entry, and label matched
 * literally ignoring case.
 * Every answer is checked against the stored user documents
 * (listing-helper.ts computes the expected listing straight from them).
 */
import t from 'tap'
import { ObjectId } from 'mongodb'
import { build, TEST_BACKEND } from '../helper.js'
import { expectedListing, FILTER_NAMES, getPage, keyOf, listUrl, pick, PROVIDERS, random, seedOrganization, walk, type Filters, type Listed } from './listing-helper.js'

// FerretDB seeds and scans slowly (the sparse-filter walk reads 1,150 users a page), and
// the suite runs files in parallel on 2 cores: tap's 30 s default was seen to run out there.
// FerretDB 1.24 scans the users collection for every page (it serves only a bare _id from an index): slow on a loaded machine.
t.setTimeout(TEST_BACKEND === 'ferretdb' ? 900_000 : 300_000)

/** Filter values that the given entry meets, for the named filters. */
function valuesFrom (entry: Listed, names: ReadonlyArray<typeof FILTER_NAMES[number]>, next: () => number): Filters {
  const filters: Filters = {}
  for (const name of names) {
    switch (name) {
      case 'targetUserId': filters.targetUserId = next() < 0.5 ? entry.userId : entry.userId.toUpperCase(); break
      case 'provider': filters.provider = entry.provider; break
      case 'phoneNumberPrefix': filters.phoneNumberPrefix = entry.phoneNumber.slice(0, 2 + Math.floor(next() * 5)); break
      case 'label': {
        const label = entry.label!
        const start = Math.floor(next() * label.length)
        const part = label.slice(start, start + 1 + Math.floor(next() * (label.length - start)))
        filters.label = next() < 0.3 ? part.toUpperCase() : next() < 0.5 ? part.toLowerCase() : part
        break
      }
      case 'isInboundEnabled': filters.isInboundEnabled = String(entry.isInboundEnabled); break
      case 'isDefault': filters.isDefault = String(entry.isDefault); break
    }
  }
  return filters
}

/** The same filters with one value changed so that this entry no longer meets it. */
function spoil (filters: Filters, name: typeof FILTER_NAMES[number], entry: Listed, otherUserId: string): Filters {
  const spoiled = { ...filters }
  switch (name) {
    case 'targetUserId': spoiled.targetUserId = otherUserId; break
    case 'provider': spoiled.provider = PROVIDERS.find((provider) => provider !== entry.provider)!; break
    case 'phoneNumberPrefix': spoiled.phoneNumberPrefix = entry.phoneNumber.startsWith('+9') ? '+8' : '+9'; break
    case 'label': spoiled.label = 'zz no such label'; break
    case 'isInboundEnabled': spoiled.isInboundEnabled = String(!entry.isInboundEnabled); break
    case 'isDefault': spoiled.isDefault = String(!entry.isDefault); break
  }
  return spoiled
}

t.test('every filter and every combination of filters (2^6) against the stored entries', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 3, 40)
  const next = random(33)
  const all = await expectedListing(built.db, seeded.organizationId)
  let empty = 0
  let combinations = 0
  for (let mask = 0; mask < 64; mask++) {
    const names = FILTER_NAMES.filter((_, i) => (mask & (1 << i)) !== 0)
    const candidates = names.includes('label') ? all.filter((entry) => entry.label !== undefined) : all
    const witness = pick(next, candidates)
    const filters = valuesFrom(witness, names, next)
    const expected = await expectedListing(built.db, seeded.organizationId, filters)
    t.ok(expected.some((entry) => keyOf(entry) === keyOf(witness)), `${JSON.stringify(filters)}: the stored data holds a match (${expected.length})`)
    const { entries } = await walk(built, seeded.organizationId, filters, () => 5)
    t.same(entries, expected, `${JSON.stringify(filters)}: the ${expected.length} matching entries, in order`)
    combinations++

    if (names.length === 0) continue
    // The same combination with one value the witness does not meet.
    const otherUser = pick(next, seeded.userIds.filter((id) => id !== witness.userId))
    const spoiled = spoil(filters, pick(next, names), witness, otherUser)
    const spoiledExpected = await expectedListing(built.db, seeded.organizationId, spoiled)
    t.notOk(spoiledExpected.some((entry) => keyOf(entry) === keyOf(witness)), `${JSON.stringify(spoiled)}: the witness does not match`)
    const spoiledWalk = await walk(built, seeded.organizationId, spoiled, () => 5)
    t.same(spoiledWalk.entries, spoiledExpected, `${JSON.stringify(spoiled)}: the ${spoiledExpected.length} matching entries, in order`)
    if (spoiledExpected.length === 0) empty++
    combinations++
  }
  t.ok(empty >= 5, `${empty} of the ${combinations} combinations match nothing, checked to list nothing`)

  // Hand-picked ones that match nothing.
  const nothing: Filters[] = [
    { label: 'no such label anywhere' },
    { phoneNumberPrefix: '+999' },
    { targetUserId: built.fixture.foreignUserId },
    { targetUserId: built.fixture.adminId },
    { targetUserId: seeded.malformedUserIds[0]! },
    { targetUserId: seeded.malformedUserIds[2]!, provider: 'twilio' },
    { targetUserId: new ObjectId().toHexString() }
  ]
  for (const filters of nothing) {
    t.same(await expectedListing(built.db, seeded.organizationId, filters), [], `${JSON.stringify(filters)}: nothing stored matches`)
    t.same(await getPage(built.app, built.authorization, listUrl(seeded.organizationId, filters)), { phoneNumbers: [], nextCursor: null }, `${JSON.stringify(filters)}: an empty page, no cursor`)
  }
})

t.test('the filters apply to the same entry', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 4, 40)
  const stored = await expectedListing(built.db, seeded.organizationId, { targetUserId: seeded.crossUserId })
  t.same(stored.map((entry) => [entry.provider, entry.phoneNumber.slice(0, 5), entry.label]), [['twilio', '+1416', 'Alpha desk'], ['sinch', '+1905', 'Beta desk']].sort((a, b) => a[1]! < b[1]! ? -1 : 1), 'the user holds a twilio +1416… and a sinch +1905…')

  const user = seeded.crossUserId
  const crossed: Filters[] = [
    { provider: 'twilio', phoneNumberPrefix: '+1905' },
    { provider: 'sinch', phoneNumberPrefix: '+1416' },
    { provider: 'sinch', label: 'alpha' },
    { provider: 'twilio', isInboundEnabled: 'false' },
    { phoneNumberPrefix: '+1905', isDefault: 'true' },
    { label: 'beta', isDefault: 'true' },
    { label: 'alpha', isInboundEnabled: 'false' }
  ]
  for (const filters of crossed) {
    const page = await getPage(built.app, built.authorization, listUrl(seeded.organizationId, { targetUserId: user, ...filters }))
    t.same(page, { phoneNumbers: [], nextCursor: null }, `${JSON.stringify(filters)} for that user: nothing, although each filter alone matches one of its entries`)
    // Organization-wide: the same filters list other users' matching entries, never this user's.
    const orgWide = await walk(built, seeded.organizationId, filters, () => 10)
    t.same(orgWide.entries, await expectedListing(built.db, seeded.organizationId, filters), `${JSON.stringify(filters)} organization-wide: as stored`)
    t.notOk(orgWide.entries.some((entry) => entry.userId === user), `${JSON.stringify(filters)} organization-wide: nothing of that user`)
  }
  for (const filters of [{ provider: 'twilio' }, { phoneNumberPrefix: '+1905' }, { label: 'ALPHA' }, { isDefault: 'false' }, { isInboundEnabled: 'true' }] satisfies Filters[]) {
    const page = await getPage(built.app, built.authorization, listUrl(seeded.organizationId, { targetUserId: user, ...filters }))
    t.equal(page.phoneNumbers.length, 1, `${JSON.stringify(filters)} alone for that user: one entry`)
  }
})

t.test('label is matched literally and ignoring case', async (t) => {
  const built = await build(t)
  const seeded = await seedOrganization(built, 5, 40)
  const all = await expectedListing(built.db, seeded.organizationId)
  const labelled = all.filter((entry) => entry.label !== undefined)

  for (const label of ['.*', '.', '(', 'x(y', '[', '[ops]', '+', 'c++', '\\', 'back\\slash', '$', '^', '|', '?', '{1,2}', '-', '/', 'MAIN', 'main outbound', 'Main Outbound']) {
    const expected = labelled.filter((entry) => entry.label!.toLowerCase().includes(label.toLowerCase()))
    t.ok(expected.some((entry) => entry.userId === seeded.labelsUserId), `${JSON.stringify(label)}: the labels user holds a match`)
    t.ok(expected.length < labelled.length, `${JSON.stringify(label)}: only ${expected.length} of the ${labelled.length} labelled entries contain it`)
    const { entries } = await walk(built, seeded.organizationId, { label }, () => 4)
    t.same(entries, await expectedListing(built.db, seeded.organizationId, { label }), `${JSON.stringify(label)}: the entries whose label contains the literal text`)
    t.same(entries.map(keyOf), expected.map(keyOf))
  }
  const main = await walk(built, seeded.organizationId, { label: 'MAIN' }, () => 100)
  t.ok(main.entries.some((entry) => entry.label === 'Main Outbound'), '"MAIN" finds "Main Outbound"')
  t.ok(main.entries.some((entry) => entry.label === 'DOMAIN desk'), '"MAIN" finds "DOMAIN desk" (a substring)')
  const dotStar = await walk(built, seeded.organizationId, { label: '.*' }, () => 100)
  t.ok(dotStar.entries.length > 0 && dotStar.entries.every((entry) => entry.label!.includes('.*')), '".*" lists only labels containing ".*"')
  t.notOk(dotStar.entries.some((entry) => entry.label === 'dot.only'), '".*" does not find "dot.only"')
  t.same((await walk(built, seeded.organizationId, { label: 'zz(' }, () => 100)).entries, [], '"zz(" (an unbalanced pattern) matches nothing and is no error')
})
