/**
 * The listing directory: for each organization, the users that hold numbers
 * there, in numbered slots (1, 2, 3…) in the order they got their first one.
 * The listing walks the slots, so a page reads documents by exact `_id`
 * only: a slot range, then its users with `_id: { $in }`. Every backend
 * serves that from the `_id` index; mongo-java-server serves nothing else
 * from an index (a query on `organizationId` scans the whole collection), so
 * this is what keeps a page's cost flat as an organization grows.
 *
 * A slot's `_id` is the text `<organizationId hex>:<seq>`: mongo-java-server
 * answers an `$in` of 100 such strings in 2.3 ms, of `{ organizationId, seq }`
 * documents in 5.4 ms (measured here). Slot 0 of an organization holds its
 * counter (`last`, the highest slot handed out). A slot is taken by `$inc` on the counter, then inserting the
 * slot document; `_id` uniqueness (which holds on every backend, unlike the
 * counter's atomicity on FerretDB) makes two writers never share a slot.
 *
 * The user document names its slot (`<field>ListSlot`). A slot counts only
 * while its user names it back, so the steps need no transaction: a crash
 * after the `$inc` leaves a gap, one after the insert an orphan slot, and the
 * listing skips both. A slot is never freed, so a user keeps its place in
 * every walk under way.
 */
import type { Collection, Document, ObjectId } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import { isSameObjectId } from './number-holders.js'

export interface DirectoryDocument {
  /** `slotId(organizationId, seq)`. */
  _id: string
  organizationId: ObjectId
  seq: number
  /** Slots 1…: the user. */
  userId?: ObjectId
  /** Slot 0: the highest slot handed out. */
  last?: number
}

/** What the user document stores: its slot in its organization's directory. */
export interface StoredSlot { organizationId: ObjectId, seq: number }

export interface SlotRange {
  /** Slot number → user, for the slots of the range that exist. */
  users: Map<number, ObjectId>
  /** The highest slot handed out, or seen in the range (0 when none). */
  last: number
}

/**
 * Most attempts at taking a slot. Only FerretDB's non-atomic `$inc` makes a
 * second one happen: writers that read the same counter all get one number,
 * one of them wins its insert per round, so n concurrent first numbers need
 * up to n rounds (a random pause spreads them).
 */
const MAX_ALLOCATION_ATTEMPTS = 100

export function slotId (organizationId: ObjectId, seq: number): string {
  return `${organizationId.toHexString()}:${seq}`
}

function isDuplicateKey (error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 11000
}

/** The user's slot number in that organization, or `undefined` when it has none there (or other code wrote the field). */
export function slotOf (user: Document | null | undefined, slotField: string, organizationId: ObjectId): number | undefined {
  const stored = user?.[slotField] as Partial<StoredSlot> | null | undefined
  if (stored === null || typeof stored !== 'object' || !isSameObjectId(organizationId, stored.organizationId)) return undefined
  return Number.isSafeInteger(stored.seq) && stored.seq! > 0 ? stored.seq : undefined
}

export interface ListingDirectory {
  /** Takes a new slot for the user; the caller then names it in the user document (in the same write as the numbers). */
  allocate (organizationId: ObjectId, userId: ObjectId): Promise<number>
  /** The slots `from`…`from + count - 1` and the counter, in one query by `_id`. */
  read (organizationId: ObjectId, from: number, count: number): Promise<SlotRange>
}

export interface ListingDirectoryOptions {
  /** Called between the steps of an allocation (crash tests). */
  onStep?: ((step: 'listing:counted' | 'listing:slotted') => Promise<void>) | undefined
}

export function createListingDirectory (directory: Collection<DirectoryDocument>, options: ListingDirectoryOptions = {}): ListingDirectory {
  async function nextSeq (organizationId: ObjectId): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        const counter = await directory.findOneAndUpdate(
          { _id: slotId(organizationId, 0) },
          { $inc: { last: 1 }, $setOnInsert: { organizationId, seq: 0 } },
          { upsert: true, returnDocument: 'after' }
        )
        if (typeof counter?.last === 'number') return counter.last
        throw new Error('the listing directory counter came back without its value')
      } catch (error) {
        // Two first allocations of an organization both upserted the counter: one insert lost, count again.
        if (!isDuplicateKey(error) || attempt >= MAX_ALLOCATION_ATTEMPTS) throw error
      }
    }
  }

  async function allocate (organizationId: ObjectId, userId: ObjectId): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const seq = await nextSeq(organizationId)
      await options.onStep?.('listing:counted')
      try {
        await directory.insertOne({ _id: slotId(organizationId, seq), organizationId, seq, userId })
        await options.onStep?.('listing:slotted')
        return seq
      } catch (error) {
        // The counter handed this number out twice (FerretDB's $inc is not atomic): take the next one.
        if (!isDuplicateKey(error) || attempt >= MAX_ALLOCATION_ATTEMPTS) throw error
        await sleep(Math.random() * Math.min(20, attempt))
      }
    }
  }

  async function read (organizationId: ObjectId, from: number, count: number): Promise<SlotRange> {
    const ids = [slotId(organizationId, 0)]
    for (let seq = Math.max(from, 1); seq < from + count; seq++) ids.push(slotId(organizationId, seq))
    const documents = await directory.find({ _id: { $in: ids } }, { limit: ids.length, batchSize: ids.length }).toArray()
    const users = new Map<number, ObjectId>()
    let last = 0
    for (const document of documents) {
      if (document.seq !== 0) {
        if (document.userId !== undefined) users.set(document.seq, document.userId)
        // A counter below a slot that exists: a lost $inc on FerretDB rolled it back. The slot still counts.
        last = Math.max(last, document.seq)
      } else if (typeof document.last === 'number') {
        last = Math.max(last, document.last)
      }
    }
    return { users, last }
  }

  return { allocate, read }
}
