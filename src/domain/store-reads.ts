/**
 * The store's reads of user documents: the inbound-route lookup and the
 * paged listing. Neither writes nor takes a claim; the lookup reads a claim
 * only to resolve the two holders a transfer has between its steps.
 */
import type { Collection, Document, ObjectId } from 'mongodb'
import type { AssignmentKey, Provider } from './assignments.js'
import type { NumberClaims } from './number-claims.js'
import { holdersOf, inboundHolders, isAssignment, isSameObjectId, type NumberHolder } from './number-holders.js'
import { listableEntries, listQuery, type ListFilter, type ListPosition } from './listing.js'
import type { AssignmentHolder, ListedAssignment, ListPage, ListResult, RouteResult } from './store-api.js'

const ORGANIZATION_NOT_FOUND = { status: 'organization-not-found' } as const
const NO_ROUTE = { status: 'no-route' } as const
/** Most users one listing query reads. */
const LIST_BATCH_USERS = 1000

export interface StoreReadsContext {
  users: Collection
  claims: Pick<NumberClaims, 'read'>
  /** The user field holding the assignments. */
  field: string
  findOrganization: (organizationId: ObjectId) => Promise<Document | null>
}

export interface StoreReads {
  findInboundRoute (phoneNumber: string, provider?: Provider): Promise<RouteResult>
  findHolder (key: AssignmentKey): Promise<AssignmentHolder | undefined>
  list (organizationId: ObjectId, filter?: ListFilter, page?: ListPage): Promise<ListResult>
}

export function createStoreReads ({ users, claims, field, findOrganization }: StoreReadsContext): StoreReads {
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

  function positionOf (assignments: readonly ListedAssignment[]): ListPosition {
    const last = assignments[assignments.length - 1]!
    return { userId: last.userId, phoneNumber: last.phoneNumber, provider: last.provider }
  }

  /**
   * One page of the organization's assignments in the listing order (user
   * `_id`, phone number, provider), after `page.after`. Users are read in
   * batches, each a `find` with a limit, so the database closes every cursor
   * itself (no `killCursors` round trip) and a page holds at most `limit`
   * entries plus one batch of users in memory. At most `maxScannedUsers`
   * users are read for a page, whatever the organization's size: a sparse
   * filter may then end a page short, with a position to go on from.
   */
  async function list (organizationId: ObjectId, filter: ListFilter = {}, page: ListPage = {}): Promise<ListResult> {
    const limit = page.limit ?? Number.POSITIVE_INFINITY
    const maxScannedUsers = page.maxScannedUsers ?? Number.POSITIVE_INFINITY
    // One batch holds the page and its look-ahead (users hold one or more entries each).
    const batchSize = Math.min(LIST_BATCH_USERS, limit + 1)
    const readBatch = async (from: ListPosition | undefined): Promise<Document[]> =>
      await users.find(listQuery(organizationId, field, filter, from), { projection: { [field]: 1 }, sort: { _id: 1 }, limit: batchSize }).toArray()

    const [organization, firstBatch] = await Promise.all([findOrganization(organizationId), readBatch(page.after)])
    if (organization === null) return ORGANIZATION_NOT_FOUND

    const assignments: ListedAssignment[] = []
    let scanned = 0
    let after = page.after
    let batch = firstBatch
    for (;;) {
      for (const holder of batch) {
        const userId = holder['_id'] as ObjectId
        const inside = after !== undefined && after.phoneNumber !== undefined && isSameObjectId(after.userId, userId) ? after : undefined
        for (const entry of listableEntries(holder[field], filter, inside)) {
          // One more entry exists: the page ends at the last one returned.
          if (assignments.length === limit) return { status: 'listed', assignments, next: positionOf(assignments) }
          assignments.push({ ...entry, userId })
        }
        if (++scanned >= maxScannedUsers) {
          // Bounded work: go on from here next time (this page may be short, the next one empty).
          return { status: 'listed', assignments, next: assignments.length === limit ? positionOf(assignments) : { userId } }
        }
      }
      // A short batch was the last one.
      if (batch.length < batchSize) return { status: 'listed', assignments, next: undefined }
      after = { userId: batch[batch.length - 1]!['_id'] as ObjectId }
      batch = await readBatch(after)
    }
  }

  return { findInboundRoute, findHolder, list }
}
