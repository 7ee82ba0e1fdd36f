/**
 * The event log: the events collection, read in the order events reached it
 * (`position`, then `_id`).
 *
 * Positions come from the clocks of the processes that flush (event-outbox.ts),
 * so an event flushed by a slow process may land behind a position a reader
 * has already passed. A reader therefore only sees events at least
 * `visibilityDelayMs` old: a flush stamps its events right before it sends
 * them, and one that takes longer than the delay is what could still slip
 * behind a cursor (so keep the delay well above the database's worst insert
 * time, and the processes' clocks in sync).
 */
import type { Collection, Document, ObjectId } from 'mongodb'
import type { ChangeType, LoggedEvent } from './change-events.js'

export interface EventFilter {
  phoneNumber?: string | undefined
  /** The user whose assignment changed (for a transfer, either user). */
  userId?: ObjectId | undefined
  type?: ChangeType | undefined
}

export interface EventPageRequest {
  limit: number
  /** An event id: the page starts right after it. */
  after?: string | undefined
}

export type EventPage =
  /** `next`: the id to read on from while more events follow; `undefined` at the end. */
  | { status: 'listed', events: LoggedEvent[], next: string | undefined }
  /** `after` names no event of this organization. */
  | { status: 'unknown-cursor' }

export interface EventLogOptions {
  visibilityDelayMs: number
}

export interface EventLog {
  page (organizationId: ObjectId, filter: EventFilter, request: EventPageRequest): Promise<EventPage>
  /** Drops the events recorded before `cutoff`; returns how many. */
  expire (cutoff: Date): Promise<number>
}

export function createEventLog (events: Collection<LoggedEvent>, options: EventLogOptions): EventLog {
  function filterQuery (organizationId: ObjectId, filter: EventFilter): Document[] {
    const clauses: Document[] = [{ organizationId }]
    if (filter.phoneNumber !== undefined) clauses.push({ phoneNumber: { $eq: filter.phoneNumber } })
    if (filter.type !== undefined) clauses.push({ type: { $eq: filter.type } })
    if (filter.userId !== undefined) clauses.push({ $or: [{ userId: filter.userId }, { fromUserId: filter.userId }] })
    return clauses
  }

  async function page (organizationId: ObjectId, filter: EventFilter, request: EventPageRequest): Promise<EventPage> {
    const clauses = filterQuery(organizationId, filter)
    clauses.push({ position: { $lte: (Date.now() - options.visibilityDelayMs) * 1000 } })
    if (request.after !== undefined) {
      // Read by bare _id: every backend serves that from its primary key.
      const from = await events.findOne({ _id: request.after }, { projection: { organizationId: 1, position: 1 } })
      if (from === null || !organizationId.equals(from.organizationId)) return { status: 'unknown-cursor' }
      clauses.push({ $or: [{ position: { $gt: from.position } }, { position: from.position, _id: { $gt: request.after } }] })
    }
    const found = await events.find({ $and: clauses }, { sort: { position: 1, _id: 1 }, limit: request.limit + 1 }).toArray()
    const more = found.length > request.limit
    const page = more ? found.slice(0, request.limit) : found
    return { status: 'listed', events: page, next: more ? page[page.length - 1]!._id : undefined }
  }

  async function expire (cutoff: Date): Promise<number> {
    const { deletedCount } = await events.deleteMany({ recordedAt: { $lt: cutoff } })
    return deletedCount
  }

  return { page, expire }
}
