/**
 * Many assigns in one call. Each item goes through `store.assign`, so every
 * rule of a single assign applies to it (organization, ownership, inbound
 * route, per-user limit, events). Items run BULK_CONCURRENCY at a time, and
 * items for the same user or the same number run in the order given: the
 * outcome (which default wins, which item meets the per-user limit) is the
 * one the same single requests sent one by one would have had.
 */
import type { ObjectId } from 'mongodb'
import type { AssignmentInput } from './assignments.js'
import type { AssignResult, ChangeOptions, PhoneNumberStore } from './store-api.js'
import { runInKeyOrder } from './keyed-batch.js'

/** Items in flight at once: enough to hide the database round-trips, few enough to leave the pool to other requests. */
export const BULK_CONCURRENCY = 16

export interface BulkAssignItem {
  userId: ObjectId
  input: AssignmentInput
}

/** The store's answer for the item, or what it threw (a database failure). */
export type BulkAssignOutcome = PromiseSettledResult<AssignResult>

export async function assignInBulk (
  store: Pick<PhoneNumberStore, 'assign'>,
  organizationId: ObjectId,
  items: readonly BulkAssignItem[],
  change: ChangeOptions,
  concurrency: number = BULK_CONCURRENCY
): Promise<BulkAssignOutcome[]> {
  return await runInKeyOrder(
    items,
    (item) => [`user:${item.userId.toHexString()}`, `number:${item.input.phoneNumber}`],
    concurrency,
    async (item) => await store.assign(organizationId, item.userId, item.input, change)
  )
}

/** Where two items name the same (user, provider, number): the later item's index and the first one's. */
export function firstRepeatedItem (items: readonly BulkAssignItem[]): { index: number, first: number } | undefined {
  const seen = new Map<string, number>()
  for (const [index, item] of items.entries()) {
    const key = `${item.userId.toHexString()} ${item.input.provider} ${item.input.phoneNumber}`
    const first = seen.get(key)
    if (first !== undefined) return { index, first }
    seen.set(key, index)
  }
  return undefined
}
