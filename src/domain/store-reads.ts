/**
 * The store's reads of user documents: the inbound-route lookup and the
 * paged listing. Neither writes nor takes a claim; the lookup reads a claim
 * only to resolve the two holders a transfer has between its steps.
 */
import type { Collection, Document, ObjectId } from 'mongodb'
import type { AssignmentKey, Provider, StoredAssignment } from './assignments.js'
import type { NumberClaims } from './number-claims.js'
import { holdersOf, inboundHolders, isAssignment, isSameObjectId, type NumberHolder } from './number-holders.js'
import { listableEntries, type ListFilter, type ListPosition } from './listing.js'
import { slotOf, type ListingDirectory } from './listing-directory.js'
import type { AssignmentHolder, ListedAssignment, ListPage, ListResult, RouteResult } from './store-api.js'

const ORGANIZATION_NOT_FOUND = { status: 'organization-not-found' } as const
const NO_ROUTE = { status: 'no-route' } as const
/** Most directory slots (and so users) one listing query reads. */
const LIST_BATCH_USERS = 1000

export interface StoreReadsContext {
  users: Collection
  claims: Pick<NumberClaims, 'read'>
  /** The user field holding the assignments. */
  field: string
  findOrganization: (organizationId: ObjectId) => Promise<Document | null>
  directory: ListingDirectory
  /** The user field naming the user's directory slot. */
  slotField: string
}

export interface StoreReads {
  findInboundRoute (phoneNumber: string, provider?: Provider): Promise<RouteResult>
  findHolder (key: AssignmentKey): Promise<AssignmentHolder | undefined>
  list (organizationId: ObjectId, filter?: ListFilter, page?: ListPage): Promise<ListResult>
}

export function createStoreReads ({ users, claims, field, findOrganization, directory, slotField }: StoreReadsContext): StoreReads {
  const userProjection = { organizationId: 1, [field]: 1, [slotField]: 1 }
  const numberField = `${field}.phoneNumber`
  const providerField = `${field}.provider`

  async function findInboundRoute (phoneNumber: string, provider?: Provider): Promise<RouteResult> {
    const query = provider === undefined ? { [numberField]: phoneNumber } : { [numberField]: phoneNumber, [providerField]: provider }
    let routes: NumberHolder[] = []
    for (let attempt = 0; attempt < 2; attempt++) {
      const documents = await users.find(query, { projection: { organizationId: 1, [field]: 1 } }).toArray()
      routes = inboundHolders(holdersOf(documents, field, phoneNumber, provider))
      if (routes.length === 0) return NO_ROUTE
      if (routes.length === 1) return { status: 'routed', holder: routes[0]! }
      // Two routes are legitimate only mid-transfer: its claim says which one is live.
      const claim = await claims.read(phoneNumber)
      const pending = claim?.transfer
      const live = claim?.inbound
      if (pending !== undefined && live != null && routes.length === 2 &&
        routes.every((holder) => isAssignment(holder, pending.fromUserId, pending.provider) || isAssignment(holder, pending.toUserId, pending.provider))) {
        const holder = routes.find((candidate) => isAssignment(candidate, live.userId, live.provider))
        if (holder !== undefined) return { status: 'routed', holder }
      }
      // A transfer may have ended between the two reads: read the users once more.
    }
    return { status: 'ambiguous', holders: routes }
  }

  async function findHolder (key: AssignmentKey): Promise<AssignmentHolder | undefined> {
    const route = await findInboundRoute(key.phoneNumber, key.provider)
    return route.status === 'routed' ? route.holder : undefined
  }

  function positionOf (assignments: readonly ListedAssignment[], seq: number): ListPosition {
    const last = assignments[assignments.length - 1]!
    return { seq, phoneNumber: last.phoneNumber, provider: last.provider }
  }

  /** The user's entries of a page: in the organization, in this slot (when given), after the position. */
  function entriesOf (user: Document | undefined, organizationId: ObjectId, seq: number | undefined, filter: ListFilter, after: ListPosition | undefined): StoredAssignment[] {
    if (user === undefined || !isSameObjectId(organizationId, user['organizationId'])) return []
    // A slot counts only while its user names it back (a crash or a lost race leaves orphans).
    if (seq !== undefined && slotOf(user, slotField, organizationId) !== seq) return []
    if (filter.userId !== undefined && !isSameObjectId(filter.userId, user['_id'])) return []
    return listableEntries(user[field], filter, after?.phoneNumber === undefined ? undefined : after)
  }

  /**
   * Collects a page: entries are added up to `limit`; `add` answers the
   * position to go on from once one more entry exists than the page holds.
   */
  function pageOf (limit: number): { assignments: ListedAssignment[], add: (entries: readonly StoredAssignment[], userId: ObjectId, seq: number) => ListPosition | undefined } {
    const assignments: ListedAssignment[] = []
    let lastSeq = 0
    function add (entries: readonly StoredAssignment[], userId: ObjectId, seq: number): ListPosition | undefined {
      for (const entry of entries) {
        // The page ends at the last entry returned, which may be in an earlier slot.
        if (assignments.length === limit) return positionOf(assignments, lastSeq)
        assignments.push({ ...entry, userId })
        lastSeq = seq
      }
      return undefined
    }
    return { assignments, add }
  }

  /** One user's page (the targetUserId filter): read by `_id` alone, whether or not the directory knows the user yet. */
  async function listOneUser (organizationId: ObjectId, userId: ObjectId, filter: ListFilter, after: ListPosition | undefined, limit: number): Promise<ListResult> {
    const [organization, user] = await Promise.all([findOrganization(organizationId), users.findOne({ _id: userId }, { projection: userProjection })])
    if (organization === null) return ORGANIZATION_NOT_FOUND
    const { assignments, add } = pageOf(limit)
    const next = add(entriesOf(user ?? undefined, organizationId, undefined, filter, after), userId, slotOf(user, slotField, organizationId) ?? 0)
    return { status: 'listed', assignments, next }
  }

  /**
   * One page of the organization's assignments in the listing order
   * (directory slot, phone number, provider), after `page.after`. Slots are
   * read in batches, each batch's users by `_id`, so every query is served
   * by the `_id` index on every backend and a page holds at most `limit`
   * entries plus one batch of users in memory. At most `maxScannedUsers`
   * slots are read for a page, whatever the organization's size: a sparse
   * filter may then end a page short, with a position to go on from.
   */
  async function list (organizationId: ObjectId, filter: ListFilter = {}, page: ListPage = {}): Promise<ListResult> {
    const limit = page.limit ?? Number.POSITIVE_INFINITY
    if (filter.userId !== undefined) return await listOneUser(organizationId, filter.userId, filter, page.after, limit)
    const maxScannedUsers = page.maxScannedUsers ?? Number.POSITIVE_INFINITY
    // The first batch holds the page and its look-ahead (users hold one or more
    // entries each); when filters leave it short, each next batch is twice as
    // large, so a sparse page takes a few round trips, not one per batch.
    let batchSize = Math.min(LIST_BATCH_USERS, limit + 1, maxScannedUsers)
    // Inside a slot: read it again for the entries after the position.
    let from = page.after === undefined ? 1 : page.after.phoneNumber === undefined ? page.after.seq + 1 : page.after.seq
    const [organization, firstRange] = await Promise.all([findOrganization(organizationId), directory.read(organizationId, from, batchSize)])
    if (organization === null) return ORGANIZATION_NOT_FOUND

    const { assignments, add } = pageOf(limit)
    let scanned = 0
    let range = firstRange
    for (;;) {
      const ids = [...range.users.values()]
      const documents = ids.length === 0 ? [] : await users.find({ _id: { $in: ids } }, { projection: userProjection, limit: ids.length, batchSize: ids.length }).toArray()
      const byId = new Map(documents.map((document) => [String(document['_id']), document]))
      const end = Math.min(from + batchSize, range.last + 1)
      for (let seq = from; seq < end; seq++) {
        const userId = range.users.get(seq)
        if (userId !== undefined) {
          const after = seq === page.after?.seq ? page.after : undefined
          const next = add(entriesOf(byId.get(String(userId)), organizationId, seq, filter, after), userId, seq)
          if (next !== undefined) return { status: 'listed', assignments, next }
        }
        if (++scanned >= maxScannedUsers && seq < range.last) {
          // Bounded work: go on from here next time (this page may be short, the next one empty).
          return { status: 'listed', assignments, next: { seq } }
        }
      }
      // Past the last slot handed out when the batch was read: the walk is over.
      if (end > range.last) return { status: 'listed', assignments, next: undefined }
      from = end
      batchSize = Math.min(LIST_BATCH_USERS, batchSize * 2, Math.max(1, maxScannedUsers - scanned))
      range = await directory.read(organizationId, from, batchSize)
    }
  }

  return { findInboundRoute, findHolder, list }
}
