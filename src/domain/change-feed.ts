/**
 * The change log read across every organization, in log order (`position`,
 * then `_id`): what a process follows to hear of the changes other processes
 * made. Served by the `position_1__id_1` index (the per-organization indexes
 * of event-log.ts start with `organizationId`).
 */
import type { Collection } from 'mongodb'
import type { LoggedEvent } from './change-events.js'
import { ensureChangeFeedIndexes } from './store-indexes.js'

/** The fields a follower needs of an event: which number changed, and its place. */
export type FeedEvent = Pick<LoggedEvent, '_id' | 'phoneNumber' | 'position'>

export interface ChangeFeed {
  /** Events with a position from `fromPosition` to `upToPosition` (both included), oldest first, at most `limit`. */
  read (fromPosition: number, upToPosition: number, limit: number): Promise<FeedEvent[]>
  /** Whether the event is still in the log (retention may have deleted it). */
  holds (eventId: string): Promise<boolean>
  ensureIndexes (): Promise<void>
}

const FEED_PROJECTION = { projection: { _id: 1, phoneNumber: 1, position: 1 } } as const

export function createChangeFeed (events: Collection<LoggedEvent>): ChangeFeed {
  async function read (fromPosition: number, upToPosition: number, limit: number): Promise<FeedEvent[]> {
    return await events.find({ position: { $gte: fromPosition, $lte: upToPosition } }, { ...FEED_PROJECTION, sort: { position: 1, _id: 1 }, limit }).toArray()
  }

  async function holds (eventId: string): Promise<boolean> {
    return await events.findOne({ _id: eventId }, { projection: { _id: 1 } }) !== null
  }

  async function ensureIndexes (): Promise<void> {
    await ensureChangeFeedIndexes(events)
  }

  return { read, holds, ensureIndexes }
}
